"""TFRecords without TensorFlow: written byte for byte as TensorFlow writes them, read back as TensorFlow reads them."""

from __future__ import annotations

import numpy as np
import pytest

from optbench.components.shared.records import example_bytes, parse_example, read_split, tfrecords, write_tfrecords


def test_examples_and_files_are_byte_for_byte_tensorflows(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = [0, 9, 3, 127, 128, 5, 1, 2, 7, 8, 4, 6]  # 127 and 128: a label's varint of one byte and of two
    ours = [example_bytes(image.tobytes(), label) for image, label in zip(images, labels)]
    theirs = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
            )
        ).SerializeToString(deterministic=True)
        for image, label in zip(images, labels)
    ]
    assert ours == theirs
    write_tfrecords(str(tmp_path / "ours.tfrecord"), ours)
    with tf.io.TFRecordWriter(str(tmp_path / "theirs.tfrecord")) as writer:
        for record in theirs:
            writer.write(record)
    assert (tmp_path / "ours.tfrecord").read_bytes() == (tmp_path / "theirs.tfrecord").read_bytes()
    assert [parse_example(r) for r in tfrecords(str(tmp_path / "ours.tfrecord"))] == [
        (image.tobytes(), label) for image, label in zip(images, labels)
    ]


def test_a_split_reads_as_tensorflow_reads_the_ingest_steps_shards(tiny_dataset):
    import tensorflow as tf

    from optbench.components.shared.artifacts import split_files
    from optbench.components.shared.batches import parse_examples

    images, labels = read_split(str(tiny_dataset), "train")
    serialized = tf.data.TFRecordDataset(split_files(str(tiny_dataset), "train")).batch(10_000).get_single_element()
    tf_images, tf_labels = parse_examples(serialized)
    np.testing.assert_array_equal(images, tf_images.numpy().astype(np.uint8))
    np.testing.assert_array_equal(labels, tf_labels.numpy())


def test_a_truncated_file_fails_with_its_name(tmp_path):
    path = tmp_path / "cut.tfrecord"
    write_tfrecords(str(path), [example_bytes(bytes(784), 3)])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="cut.tfrecord: truncated record"):
        list(tfrecords(str(path)))
