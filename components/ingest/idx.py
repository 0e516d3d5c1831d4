"""Read and validate MNIST's IDX files (LeCun's format), gzip-compressed.

Every check that fails raises `DataError` naming the file and the check, so a
bad download stops the run before any training starts. A file is hostile until
checked: its header is checked before anything is allocated for the data, and
no more is decompressed than the header says plus one byte, so a decompression
bomb costs neither memory nor time. Which dataset the files hold is
the question of `shared.datasets`, not this module's.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from optbench.components.shared.datasets import SPLIT_FILES
from optbench.components.shared.schema import IMAGE_SHAPE, NUM_CLASSES
from optbench.components.shared.untrusted import UntrustedInput

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
IMAGE_BYTES = math.prod(IMAGE_SHAPE)
# The most examples one IDX file (one split) may hold. The largest MNIST-style set, EMNIST ByClass, has 814,255 in
# all; a header saying more is refused before anything is allocated. Its images are 784 MB decompressed.
MAX_EXAMPLES = 1_000_000


class DataError(UntrustedInput):
    """The data source failed a check; the message names the file and the check (a ValueError, as every refusal)."""


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> tuple[tuple[int, ...], bytes]:
    """(shape, data) of a gzip IDX file: its header checked first, then exactly the bytes the header says."""
    try:
        with gzip.open(path, "rb") as f:
            shape = _header(path, f, magic, item_shape)
            return shape, _payload(path, f, shape)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a complete gzip file ({e}); the download may be truncated or corrupt") from e


def _header(path: Path, f: gzip.GzipFile, magic: int, item_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the header declares, refused unless it is (count, *item_shape) with count at most MAX_EXAMPLES."""
    size = 4 + 4 * (1 + len(item_shape))
    raw = f.read(size)
    if len(raw) < size:
        raise DataError(f"{path}: IDX header check failed: {len(raw)} bytes, need {size}")
    found, count, *item = struct.unpack(f">I{1 + len(item_shape)}I", raw)
    if found != magic:
        raise DataError(f"{path}: IDX magic number check failed: found {found:#010x}, expected {magic:#010x}")
    if tuple(item) != item_shape:
        raise DataError(f"{path}: image shape check failed: {tuple(item)}, expected {item_shape}")
    if count > MAX_EXAMPLES:
        raise DataError(
            f"{path}: IDX count check failed: its header says {count:,} examples, at most {MAX_EXAMPLES:,} are valid: "
            "refused before reading the data"
        )
    return (count, *item_shape)


def _payload(path: Path, f: gzip.GzipFile, shape: tuple[int, ...]) -> bytes:
    """The data after the header: exactly the bytes `shape` says; decompressing stops one byte after (a bomb)."""
    expected = math.prod(shape)
    data = f.read(expected + 1)
    if len(data) > expected:
        raise DataError(
            f"{path}: IDX size check failed: decompresses to more than {expected:,} bytes of data, "
            f"its header {shape} says {expected:,}: refused without reading the rest"
        )
    if len(data) < expected:
        raise DataError(
            f"{path}: IDX size check failed: {len(data):,} bytes of data for shape {shape}, "
            f"expected {expected:,} (truncated)"
        )
    return data


def read_images(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    shape, data = _read_idx(path, IMAGES_MAGIC, IMAGE_SHAPE)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    _, data = _read_idx(path, LABELS_MAGIC, ())
    labels = np.frombuffer(data, dtype=np.uint8)
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataError(
            f"{path}: label range check failed: {bad.size} labels outside 0-{NUM_CLASSES - 1} "
            f"(first at index {bad[0]}: {labels[bad[0]]})"
        )
    return labels


def read_split(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N,28,28], labels uint8 [N]) of `split` ('train' or 'test') in `folder`."""
    folder = Path(folder)
    images_name, labels_name = SPLIT_FILES[split]
    images, labels = read_images(folder / images_name), read_labels(folder / labels_name)
    if len(images) != len(labels):
        raise DataError(
            f"{folder / images_name}: count check failed: {len(images)} images "
            f"but {labels_name} has {len(labels)} labels"
        )
    if len(images) == 0:
        raise DataError(f"{folder / images_name}: count check failed: the {split} split is empty")
    return images, labels


def write_images(path: str | os.PathLike, images: np.ndarray) -> None:
    """Write uint8 [N,28,28] as gzip IDX (used to normalise npz and npm sources)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(struct.pack(">IIII", IMAGES_MAGIC, *images.shape))
        f.write(images.tobytes())


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(struct.pack(">II", LABELS_MAGIC, len(labels)))
        f.write(labels.tobytes())
