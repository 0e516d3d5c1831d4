"""The training input: tf.data over the ingest step's TFRecords.

Records are read and parsed in parallel batches (vectorised), held in memory
as uint8, shuffled with a fixed seed so every optimizer sees the same order
in every epoch, gathered batch by batch and prefetched so the accelerator
never waits.
"""

from __future__ import annotations

from pathlib import Path

from optbench.components.shared.artifacts import split_files
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


def load_split(dataset_dir: str, split: str):
    """The whole split as a dataset of (uint8 image [28,28,1], int64 label), cached in memory.

    Its size is asserted from stats.json, so Keras knows the steps per epoch.
    """
    import tensorflow as tf

    def parse_uint8(serialized):
        images, labels = parse_examples(serialized)
        return tf.cast(images, tf.uint8), labels

    return (
        tf.data.TFRecordDataset(split_files(dataset_dir, split), num_parallel_reads=tf.data.AUTOTUNE)
        .batch(4096)
        .map(parse_uint8, num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(split_size(dataset_dir, split)))
        .cache()
    )


def batches(dataset, batch_size: int, shuffle_seed: int | None = None):
    """Batched uint8 input (the model casts and rescales); shuffled identically each run for a given seed.

    The split is held as two tensors and each batch is one gather by shuffled
    indices, as Keras does for in-memory arrays: shuffling individual image
    elements through tf.data costs more per epoch than a small CNN's training.
    """
    import tensorflow as tf

    images, labels = dataset.batch(int(dataset.cardinality())).get_single_element()
    order = tf.data.Dataset.range(int(dataset.cardinality()))
    if shuffle_seed is not None:
        order = order.shuffle(int(dataset.cardinality()), seed=shuffle_seed, reshuffle_each_iteration=True)
    return (
        order.batch(batch_size)
        .map(lambda i: (tf.gather(images, i), tf.gather(labels, i)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
