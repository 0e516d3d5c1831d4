"""One MNIST digit <-> one tf.Example (see docs/artifacts.md), serialized without TensorFlow (`records`)."""

from __future__ import annotations

import numpy as np

from optbench.components.shared.records import example_bytes


def to_example_bytes(image: np.ndarray, label: int) -> bytes:
    """Serialize a uint8 [28,28] image and its label; the image stays raw uint8 bytes, the map keys sorted: the same
    bytes in every process, and as TensorFlow's deterministic serialization writes them."""
    return example_bytes(np.asarray(image, np.uint8).tobytes(), int(label))
