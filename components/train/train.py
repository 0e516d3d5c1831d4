"""Train one model with one optimizer, from the shared initial weights.

Fairness is built in: the weights come from the init step's file, the data
order comes from a seeded shuffle (the same for every optimizer), and Keras's
global seed fixes dropout. A diverging optimizer (NaN or exploding loss) is
stopped and recorded as diverged rather than failing the whole comparison.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from components.common.files import write_json_atomic
from components.common.schema import HISTORY_FILE, SAVED_MODEL_DIR
from components.train import optimizers

log = logging.getLogger(__name__)

EXPLODED_LOSS = 1e6  # a cross-entropy this large never comes back
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # recorded per epoch, in this order


def configure_threads(threads: int | None) -> None:
    """Give TF a share of the cores: on a laptop two training tasks run side by side."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, threads))


def _progress_callback(name: str, epochs: int, train_examples: int, record: list[dict], state: dict):
    import keras

    class Progress(keras.callbacks.Callback):
        """Per-epoch wall time (training part alone for throughput) and divergence."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            self._train_end = None

        def on_test_begin(self, logs=None):
            self._train_end = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not (math.isfinite(loss) and loss < EXPLODED_LOSS):
                state["diverged"] = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            train_s = (self._train_end or end) - self._start
            logs = {k: float(v) for k, v in (logs or {}).items()}
            row = {"epoch": epoch + 1, **{k: logs.get(k, math.nan) for k in METRICS},
                   "seconds": end - self._start, "examples_per_second": train_examples / train_s}
            record.append(row)
            if state.get("diverged"):
                state.setdefault("epoch", epoch + 1)
            log.info("train[%s] epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs",
                     name, epoch + 1, epochs, *(row[k] for k in METRICS), row["seconds"])

    return Progress()


def run_train(dataset_dir: str, initial_dir: str, optimizer: str, output_dir: str, *, epochs: int = 10,
              batch_size: int = 64, seed: int = 0, learning_rate: float | None = None,
              threads: int | None = None) -> dict:
    """Train, export the SavedModel and write history.json into `output_dir`; return the history."""
    spec = optimizers.get_spec(optimizer)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    configure_threads(threads)
    import keras
    import tensorflow as tf

    from components.init_model.init_model import load_initial
    from components.train.data import batches, load_split, split_size
    from components.train.export import export_saved_model

    keras.utils.set_random_seed(seed)  # dropout masks; the data order has its own seed below
    model, info = load_initial(initial_dir)
    overrides = {} if learning_rate is None else {"learning_rate": learning_rate}
    opt = optimizers.build(optimizer, **overrides)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    train = load_split(dataset_dir, "train")
    train_examples = split_size(dataset_dir, "train")
    validation = load_split(dataset_dir, "validation")
    record: list[dict] = []
    state: dict = {}
    started = time.perf_counter()
    model.fit(batches(train, batch_size, shuffle_seed=seed), validation_data=batches(validation, 1024),
              epochs=epochs, verbose=0, shuffle=False,  # the dataset is already shuffled, by seed
              callbacks=[_progress_callback(optimizer, epochs, train_examples, record, state)])
    train_seconds = time.perf_counter() - started

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    export_saved_model(model, str(out / SAVED_MODEL_DIR))
    history = {
        "optimizer": optimizer,
        "optimizer_config": {"class_name": spec.class_name, **spec.params, **overrides},
        "model": info["model"],
        "batch_size": batch_size,
        "seed": seed,
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "status": "diverged" if state.get("diverged") else "ok",
        "diverged_at_epoch": state.get("epoch"),
        "epochs": [{k: _finite(v) for k, v in row.items()} for row in record],
        "train_seconds": train_seconds,
        "parameters": info["parameters"],
        "train_examples": train_examples,
        "threads": threads or os.cpu_count(),
    }
    write_json_atomic(out / HISTORY_FILE, history)
    return history


def _finite(v):
    """NaN and inf are facts about a diverged run, but not numbers: JSON gets null."""
    return v if not isinstance(v, float) or math.isfinite(v) else None
