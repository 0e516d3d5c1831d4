"""Training throughput: our input pipeline and training step against a plain `model.fit` on numpy arrays.

The baseline is what a person writes in a notebook: the split loaded into
memory as arrays, `model.fit(x, y, batch_size=64, shuffle=True)`. Ours is the
pipeline's own `run_train` (tf.data from the ingest TFRecords, seeded
shuffle, prefetch, validation each epoch). Both start from the same initial
weights, use the same batch size, data and thread count, and are timed on
training alone (validation excluded) after a warm-up epoch; the runs
alternate so that drift on a noisy machine hits both alike.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path


def _plain_fit_examples_per_second(dataset_dir: str, initial_dir: str, model_name: str, batch_size: int,
                                   epochs: int) -> float:
    import keras
    import numpy as np

    from components.init_model.init_model import load_initial
    from components.train.data import load_split

    images, labels = zip(*load_split(dataset_dir, "train").as_numpy_iterator())
    x, y = np.stack(images).astype("float32"), np.array(labels)
    keras.utils.set_random_seed(0)
    model, _ = load_initial(initial_dir, 0)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[Timer()])
    return len(x) / statistics.median(seconds[1:])


def _ours_examples_per_second(dataset_dir: str, initial_dir: str, batch_size: int, epochs: int) -> float:
    from components.plan.suites import single_trial
    from components.train.train import run_train

    with tempfile.TemporaryDirectory() as out:
        history = run_train(dataset_dir, initial_dir, out, single_trial("adam", batch_size=batch_size),
                            epochs=epochs)
    return statistics.median(e["examples_per_second"] for e in history["epochs"][1:])


def bench_training(dataset_dir: str, model_name: str, batch_size: int = 64, epochs: int = 3,
                   repeats: int = 2) -> dict:
    """examples/s of ours and of plain model.fit (medians over alternating repeats), and their ratio."""
    from components.init_model.init_model import run_init

    with tempfile.TemporaryDirectory() as initial_dir:
        run_init(model_name, 0, initial_dir)
        ours, plain = [], []
        for _ in range(repeats):
            ours.append(_ours_examples_per_second(dataset_dir, initial_dir, batch_size, epochs))
            plain.append(_plain_fit_examples_per_second(dataset_dir, initial_dir, model_name, batch_size, epochs))
    return {"model": model_name, "batch_size": batch_size, "epochs": epochs, "repeats": repeats,
            "ours_examples_per_second": statistics.median(ours),
            "plain_fit_examples_per_second": statistics.median(plain),
            "ratio": statistics.median(ours) / statistics.median(plain),
            "train_examples": _train_size(dataset_dir)}


def _train_size(dataset_dir: str) -> int:
    from components.train.data import split_size

    return split_size(dataset_dir, "train")
