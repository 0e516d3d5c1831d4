"""Training throughput: our input pipeline and training step against a plain `model.fit` on numpy arrays.

The baseline is what a person writes in a notebook: the split loaded into
memory as arrays, `model.fit(x, y, batch_size=64, shuffle=True)`. Ours is the
training input run_train uses (the ingest TFRecords read into memory, every
epoch's order drawn from the seed, gathered batch by batch by tf.data with
prefetch) with the model compiled as run_train compiles it. Both start from the same initial weights,
with the same batch size, data and optimizer.

How it is timed matters more than usual on a shared VM: CPU speed here swings
by up to 2x within seconds, and in one process the second model trained runs
up to 1.5x faster than the first (warm allocator and kernel caches). So both
trainings live in one fresh process, each is warmed up with one epoch, and
then their epochs alternate (ours, plain, ours, plain, ...); the figure is the
ratio of the medians, training time alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from optbench.bench.isolated import run_isolated


def _timed_epoch(model, data, epoch: int, **fit_kwargs) -> float:
    """Seconds from the epoch's start to its end: fit()'s own set-up (array conversion, iterators) excluded."""
    import keras

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter())

    model.fit(data, initial_epoch=epoch, epochs=epoch + 1, verbose=0, callbacks=[Timer()], **fit_kwargs)
    return times[1] - times[0]


def interleaved_examples_per_second(dataset_dir: str, initial_dir: str, batch_size: int, rounds: int) -> dict:
    import keras

    from optbench.components.shared import optimizers
    from optbench.components.shared.batches import epoch_orders, steps_per_epoch, training_input
    from optbench.components.shared.initial import load_initial
    from optbench.components.shared.records import read_split

    def compiled():
        model, _ = load_initial(initial_dir, 0)
        model.compile(
            optimizer=optimizers.build("adam"),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
        return model

    keras.utils.set_random_seed(0)
    ours_model, plain_model = compiled(), compiled()
    images, labels = read_split(dataset_dir, "train")
    n = len(labels)
    ours_data = training_input(images, labels, batch_size, epoch_orders(n, 1, 0), "tensorflow")  # each fit: one epoch
    x, y = images.astype("float32"), labels
    ours, plain = [], []
    for epoch in range(rounds + 1):  # epoch 0 warms both up and is not counted
        o = _timed_epoch(ours_model, ours_data, epoch, steps_per_epoch=steps_per_epoch(n, batch_size))
        p = _timed_epoch(plain_model, x, epoch, y=y, batch_size=batch_size, shuffle=True)
        if epoch:
            ours.append(n / o)
            plain.append(n / p)
    return {"ours": ours, "plain": plain}


def bench_training(dataset_dir: str, model_name: str, batch_size: int = 64, rounds: int = 8) -> dict:
    """examples/s of ours and of plain model.fit (medians over alternating epochs), and their ratio."""
    from optbench.components.init_model.init_model import run_init_model
    from optbench.components.shared.batches import split_size

    with tempfile.TemporaryDirectory() as initial_dir:
        run_init_model(model_name, 0, initial_dir)
        per_epoch = run_isolated(
            "optbench.bench.training:interleaved_examples_per_second",
            dataset_dir=dataset_dir,
            initial_dir=initial_dir,
            batch_size=batch_size,
            rounds=rounds,
        )["result"]
    ours, plain = statistics.median(per_epoch["ours"]), statistics.median(per_epoch["plain"])
    return {
        "model": model_name,
        "batch_size": batch_size,
        "rounds": rounds,
        "train_examples": split_size(dataset_dir, "train"),
        "ours_examples_per_second": ours,
        "plain_fit_examples_per_second": plain,
        "ratio": ours / plain,
        "per_epoch": per_epoch,
    }
