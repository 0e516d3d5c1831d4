"""The training input: the ingest step's examples in memory as uint8, in an order drawn from the trial's seed.

Every optimizer, on every Keras backend, sees the same batches in the same
order in each epoch (a new order each epoch). The examples are read without
TensorFlow (`records`); TensorFlow parses serialized examples only where it
serves a model (the SavedModel's signature).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optbench.components.shared.files import read_json
from optbench.components.shared.schema import IMAGE_KEY, IMAGE_SHAPE, LABEL_KEY, STATS_FILE


def parse_examples(serialized, with_labels: bool = True):
    """Serialized tf.Examples [N] -> (float32 images [N,28,28,1] in 0-255, int64 labels [N] or None)."""
    import tensorflow as tf

    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    if with_labels:
        spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
    feats = tf.io.parse_example(serialized, spec)
    pixels = tf.io.decode_raw(feats[IMAGE_KEY], tf.uint8)
    images = tf.cast(tf.reshape(pixels, [-1, *IMAGE_SHAPE, 1]), tf.float32)
    return images, (feats[LABEL_KEY] if with_labels else None)


def split_size(dataset_dir: str, split: str) -> int:
    """The number of records of `split`, from the ingest step's stats.json."""
    return int(read_json(Path(dataset_dir) / STATS_FILE)["splits"][split]["count"])


def epoch_orders(count: int, epochs: int, seed: int) -> np.ndarray:
    """[epochs, count] indices: the order of the training examples in every epoch, from the trial's seed alone.

    Drawn with numpy, so every optimizer and every Keras backend sees the same batches in the same order.
    """
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(count) for _ in range(epochs)])


def steps_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def training_input(images: np.ndarray, labels: np.ndarray, batch_size: int, orders: np.ndarray, backend: str):
    """Every epoch's batches, in `orders`, as one stream for `fit(..., steps_per_epoch=...)` (which keeps reading
    one iterator across epochs): uint8 images, the model casts and rescales.

    On TensorFlow a tf.data pipeline holds the split as two tensors and gathers each batch by its indices, as
    Keras does for in-memory arrays, prefetching so the step never waits; elsewhere a generator does the same
    in numpy (no tf.data where TensorFlow may be absent).
    """
    count = len(orders[0])
    flat = orders.reshape(-1)
    bounds = np.array(
        [
            (e * count + i, e * count + min(i + batch_size, count))
            for e in range(len(orders))
            for i in range(0, count, batch_size)
        ]
    )
    if backend != "tensorflow":
        return ((images[flat[a:b]], labels[flat[a:b]]) for a, b in bounds)
    import tensorflow as tf

    x, y, order = tf.constant(images), tf.constant(labels), tf.constant(flat)

    def batch(bound):
        i = order[bound[0] : bound[1]]
        return tf.gather(x, i), tf.gather(y, i)

    # One dataset of every epoch's batches, read by one iterator, without tf.data's autotuning: when fit ends and
    # drops the iterator, TensorFlow waits for the autotuning thread's next wake-up (seconds, in a task process
    # that shares the CPU), and the prefetch has nothing to tune.
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices(bounds).map(batch).prefetch(2).with_options(options)


def validation_input(images: np.ndarray, labels: np.ndarray, backend: str, batch_size: int = 1024):
    """The validation split in its order: on TensorFlow a tf.data dataset in batches of `batch_size`; elsewhere
    the arrays, which fit evaluates in batches of the training batch size."""
    if backend != "tensorflow":
        return images, labels
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False  # as the training input's
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).cache().with_options(options)
