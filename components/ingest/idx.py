"""Read and validate MNIST's IDX files (LeCun's format), gzip-compressed.

Every check that fails raises `DataError` naming the file and the check, so a
bad download stops the run before any training starts. Which dataset the
files hold is components/ingest/datasets.py's question, not this module's.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from optbench.components.shared.datasets import SPLIT_FILES
from optbench.components.shared.schema import IMAGE_SHAPE, NUM_CLASSES

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension


class DataError(ValueError):
    """The data source failed a check; the message names the file and the check."""


def _read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a complete gzip file ({e}); the download may be truncated or corrupt") from e


def _header(path: Path, raw: bytes, magic: int, dims: int) -> tuple[int, ...]:
    size = 4 + 4 * dims
    if len(raw) < size:
        raise DataError(f"{path}: IDX header check failed: {len(raw)} bytes, need {size}")
    found, *shape = struct.unpack(f">I{dims}I", raw[:size])
    if found != magic:
        raise DataError(f"{path}: IDX magic number check failed: found {found:#010x}, expected {magic:#010x}")
    expected = size + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX size check failed: {len(raw)} bytes for shape {tuple(shape)}, "
            f"expected {expected} (truncated or padded)"
        )
    return tuple(shape)


def read_images(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    raw = _read_gz(path)
    shape = _header(path, raw, IMAGES_MAGIC, 3)
    if shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: image shape check failed: {shape[1:]}, expected {IMAGE_SHAPE}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(shape)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    raw = _read_gz(path)
    (count,) = _header(path, raw, LABELS_MAGIC, 1)
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
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
