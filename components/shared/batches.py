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
    batch_indices = [order[i : i + batch_size] for order in orders for i in range(0, len(order), batch_size)]
    if backend != "tensorflow":
        return ((images[i], labels[i]) for i in batch_indices)
    import tensorflow as tf

    x, y = tf.constant(images), tf.constant(labels)
    count = len(orders[0])
    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(lambda i: (tf.gather(x, i), tf.gather(y, i)), num_parallel_calls=tf.data.AUTOTUNE)
        .apply(tf.data.experimental.assert_cardinality(len(orders) * steps_per_epoch(count, batch_size)))
        .prefetch(tf.data.AUTOTUNE)
    )
