"""Train one model with one optimizer, from the shared initial weights.

Fairness is built in: the weights come from the init step's file, the data
order comes from a seeded shuffle (the same for every optimizer), and Keras's
global seed fixes dropout. A diverging optimizer (NaN or exploding loss) is
stopped and recorded as diverged rather than failing the whole comparison, or
as a numerical fault where a replay shows its update turned a weight
non-finite before the loss ever rose (components/train/fault.py).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from optbench.components.shared import optimizers
from optbench.components.shared.devices import configure_threads, describe_device, has_tensorflow
from optbench.components.shared.files import write_json_atomic
from optbench.components.shared.schema import HISTORY_FILE, PACK_KEY, TENSORBOARD_DIR
from optbench.components.shared.timing import timed

log = logging.getLogger(__name__)

EXPLODED_LOSS = 1e6  # a cross-entropy this large never comes back
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # recorded per epoch, in this order


def _progress_callback(
    name: str,
    epochs: int,
    train_examples: int,
    record: list[dict],
    state: dict,
    early_stopping: dict | None = None,
    board: str | None = None,
):
    import keras

    from optbench.components.train import early_stopping as median_rule

    class Progress(keras.callbacks.Callback):
        """Per-epoch wall time (training part alone for throughput), divergence and the median stopping rule
        (either stops training)."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            self._train_end = None

        def on_test_begin(self, logs=None):
            self._train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            train_s = (self._train_end or end) - self._start
            logs = {k: float(v) for k, v in (logs or {}).items()}
            row = {
                "epoch": epoch + 1,
                **{k: logs.get(k, math.nan) for k in METRICS},
                "seconds": end - self._start,
                "examples_per_second": train_examples / train_s,
            }
            record.append(row)
            # Checked once an epoch, not per batch: a per-batch callback makes Keras sync every step.
            if not (math.isfinite(row["loss"]) and row["loss"] < EXPLODED_LOSS):
                state.update(diverged=True, epoch=epoch + 1)
                self.model.stop_training = True
            elif early_stopping and board:
                accuracies = [_finite(r["val_accuracy"]) for r in record]
                median_rule.post(board, name, accuracies)
                median = median_rule.should_stop(accuracies, median_rule.read_others(board, name), early_stopping)
                if median is not None:
                    state.update(stopped=True, stopped_at=epoch + 1, median=median)
                    self.model.stop_training = True
                    log.info(
                        "train[%s] stopped at epoch %d: val_acc below the others' median %.4f", name, epoch + 1, median
                    )
            log.info(
                "train[%s] epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs",
                name,
                epoch + 1,
                epochs,
                *(row[k] for k in METRICS),
                row["seconds"],
            )

    return Progress()


def _epoch_tensorboard(log_dir: str):
    """Keras's own TensorBoard writer, per epoch only: its per-batch hooks (no-ops at epoch frequency) would
    still make Keras wait for every step's logs instead of dispatching the next step. No graph: it is the
    same for every trial."""
    import keras

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        on_train_batch_end = keras.callbacks.Callback.on_train_batch_end
        on_test_batch_end = keras.callbacks.Callback.on_test_batch_end

    return EpochTensorBoard(log_dir, write_graph=False)


TIME_TO_ACCURACY = (0.95, 0.97, 0.98, 0.99)


def time_to_accuracy(epochs: list[dict], targets=TIME_TO_ACCURACY) -> dict[str, dict | None]:
    """First epoch (and training seconds until its end) at which validation accuracy reached each target."""
    reached: dict[str, dict | None] = {f"{t:g}": None for t in targets}
    elapsed = 0.0
    for row in epochs:
        elapsed += row["seconds"]
        acc = row.get("val_accuracy")
        for t in targets:
            if reached[f"{t:g}"] is None and acc is not None and math.isfinite(acc) and acc >= t:
                reached[f"{t:g}"] = {"epoch": row["epoch"], "seconds": elapsed}
    return reached


def _bytes(variables) -> int:
    import numpy as np

    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables))


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of the optimizer's per-parameter state (slots such as momenta), not its scalar counters."""
    return _bytes(v for v in optimizer.variables if len(v.shape) >= 1)


def run_train(
    dataset_dir: str,
    initial_dir: str,
    output_dir: str,
    trial: dict,
    *,
    epochs: int = 10,
    threads: int | None = None,
    mixed_precision: bool = False,
    xla: bool = False,
    early_stopping: dict | None = None,
    board: str | None = None,
    backend: str = "tensorflow",
    packed_with: int = 0,
) -> dict:
    """Train one trial (docs/artifacts.md), export the SavedModel and write history.json; return the history.

    `early_stopping` ({grace_epochs, min_trials}) turns on the median stopping rule against the other trials'
    posts on `board`. `backend` is Keras's (this process's first Keras import decides it); `packed_with` is
    how many trials the task trains, this one among them, one after another (0: this one alone).
    """
    spec = optimizers.get_spec(trial["optimizer"])
    seed, batch_size = int(trial["seed"]), int(trial["batch_size"])
    if epochs < 1 or batch_size < 0:
        raise ValueError(f"epochs must be positive and batch_size non-negative, got {epochs} and {batch_size}")
    configure_threads(threads, backend)
    import keras

    from optbench.components.shared.batches import epoch_orders, steps_per_epoch, training_input, validation_input
    from optbench.components.shared.initial import load_initial
    from optbench.components.shared.records import read_split
    from optbench.components.train.export import export
    from optbench.components.train.fault import replay

    device = describe_device(backend)
    if xla and device["device"] == "CPU":
        log.warning("train[%s] --xla on a CPU: XLA's CPU code trains this network several times slower", trial["trial"])
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(seed)  # dropout masks; the data order has its own seed below
    model, info = load_initial(initial_dir, seed)
    params = dict(trial.get("params") or {})
    opt = optimizers.build(trial["optimizer"], **params)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=xla)

    images, labels = read_split(dataset_dir, "train")
    train_examples = len(labels)
    batch_size = batch_size or train_examples  # 0: full-batch gradient descent
    record: list[dict] = []
    state: dict = {}
    out = Path(output_dir)
    callbacks = [_progress_callback(trial["trial"], epochs, train_examples, record, state, early_stopping, board)]
    if has_tensorflow():  # Keras writes TensorBoard's files through tf.summary, on any backend
        callbacks.append(_epoch_tensorboard(str(out / TENSORBOARD_DIR)))
    started = time.perf_counter()
    model.fit(
        training_input(images, labels, batch_size, epoch_orders(train_examples, epochs, seed), backend),
        steps_per_epoch=steps_per_epoch(train_examples, batch_size),
        validation_data=validation_input(*read_split(dataset_dir, "validation"), backend),
        epochs=epochs,
        verbose=0,
        shuffle=False,  # the input is in the seed's order already
        callbacks=callbacks,
    )
    train_seconds = time.perf_counter() - started
    fault = None
    if state.get("diverged"):  # which step went non-finite, and whether the loss had risen before it

        def build():
            keras.utils.set_random_seed(seed)
            replayed, _ = load_initial(initial_dir, seed)
            replayed.compile(optimizers.build(trial["optimizer"], **params), "sparse_categorical_crossentropy")
            return replayed

        orders = epoch_orders(train_examples, state["epoch"], seed)
        fault = replay(build, training_input(images, labels, batch_size, orders, "numpy"), EXPLODED_LOSS)
        if fault and fault.numerical_fault:
            log.warning(
                "train[%s] numerical fault at step %d: %s turned non-finite before the loss ever rose "
                "(a fault of %s's update, not divergence)",
                trial["trial"],
                fault.step,
                fault.weight or "the loss",
                trial["optimizer"],
            )

    out.mkdir(parents=True, exist_ok=True)
    export(model, out, backend)
    epochs_record = [{k: _finite(v) for k, v in row.items()} for row in record]
    parameter_bytes = _bytes(model.trainable_variables)
    state_bytes = optimizer_state_bytes(opt)
    history = {
        "trial": trial["trial"],
        "variant": trial["variant"],
        "lr_sweep": bool(trial.get("lr_sweep")),
        "optimizer": trial["optimizer"],
        "params": params,  # the suite's overrides: what the step-cost step rebuilds the optimizer from
        "optimizer_config": {"class_name": spec.class_name, **spec.params, **params},
        "learning_rate": float(opt.learning_rate),
        "model": info["model"],
        "batch_size": batch_size,
        "seed": seed,
        **device,
        "backend": backend,
        "packed_with": packed_with,
        "mixed_precision": mixed_precision,
        "xla": xla,
        "status": (
            ("fault" if fault and fault.numerical_fault else "diverged")
            if state.get("diverged")
            else "stopped"
            if state.get("stopped")
            else "ok"
        ),
        "diverged_at_epoch": state.get("epoch"),
        "fault": fault.as_dict() if fault else None,  # the replay's finding, whichever way it went
        "stopped_at_epoch": state.get("stopped_at"),
        "stopped_below_median": state.get("median"),
        "epochs": epochs_record,
        "train_seconds": train_seconds,
        "time_to_accuracy": time_to_accuracy(epochs_record),
        "parameters": info["parameters"],
        "parameter_bytes": parameter_bytes,
        "optimizer_state_bytes": state_bytes,
        "optimizer_state_ratio": state_bytes / parameter_bytes,
        "train_examples": train_examples,
        "threads": threads or os.cpu_count(),
    }
    write_json_atomic(out / HISTORY_FILE, history)
    return history


@timed("train")
def run_train_task(dataset, initial, item: dict, model, metrics, plan: dict, threads: int, mixed, xla) -> None:
    """The body of the train components: train `item`, one trial or a pack of them (one after another, each to
    its own folder under the model artifact), for the plan's epochs (plan.json), then fill their KFP artifacts.
    """
    from optbench.components.shared.artifacts import persist_metadata
    from optbench.components.train.early_stopping import board_of

    packed = PACK_KEY in item
    trials = item.get(PACK_KEY, [item])
    for trial in trials:
        history = run_train(
            dataset.path,
            initial.path,
            str(Path(model.path) / trial["trial"]) if packed else model.path,
            trial,
            epochs=plan["epochs"],
            early_stopping=plan["early_stopping"],
            board=board_of(initial.uri),
            threads=threads or None,
            mixed_precision=mixed,
            xla=xla,
            backend=plan["settings"].get("backend", "tensorflow"),
            packed_with=len(trials) if packed else 0,
        )
        prefix = f"{trial['trial']}/" if packed else ""
        for key, value in kfp_metrics(history).items():
            metrics.log_metric(prefix + key, value)
        if not packed:
            model.metadata.update({k: history[k] for k in ("trial", "variant", "optimizer", "seed", "status")})
    if packed:
        model.metadata.update(trials=[t["trial"] for t in trials])
    persist_metadata(metrics)


def kfp_metrics(history: dict) -> dict[str, float]:
    """Scalars for the KFP UI's run comparison: same names in every run."""
    last = history["epochs"][-1] if history["epochs"] else {}
    scalars = {
        "val_accuracy": last.get("val_accuracy"),
        "val_loss": last.get("val_loss"),
        "train_seconds": history["train_seconds"],
        "optimizer_state_ratio": history["optimizer_state_ratio"],
        "diverged": float(history["status"] == "diverged"),
        "numerical_fault": float(history["status"] == "fault"),
        "stopped": float(history["status"] == "stopped"),
    }
    return {k: float(v) for k, v in scalars.items() if v is not None}


def _finite(v):
    """NaN and inf are facts about a diverged run, but not numbers: JSON gets null."""
    return v if not isinstance(v, float) or math.isfinite(v) else None
