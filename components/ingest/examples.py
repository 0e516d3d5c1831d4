"""One MNIST digit <-> one tf.Example (see docs/artifacts.md)."""

from __future__ import annotations

import numpy as np

from optbench.components.shared.schema import IMAGE_KEY, LABEL_KEY


def to_example_bytes(image: np.ndarray, label: int) -> bytes:
    """Serialize a uint8 [28,28] image and its label; the image stays raw uint8 bytes."""
    import tensorflow as tf

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE_KEY: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[np.asarray(image, np.uint8).tobytes()])
                ),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
        )
    ).SerializeToString(deterministic=True)  # map keys sorted: the same bytes in every process
