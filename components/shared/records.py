"""The ingest step's TFRecords, written and read without TensorFlow.

Training on Keras's JAX backend must run where TensorFlow is absent (a GPU
machine with JAX only), so its input cannot be tf.data; and the ingest step,
which Beam runs, spends four seconds importing TensorFlow for nothing else
than serializing two fields. A TFRecord file is a
run of records, each an 8-byte little-endian length, a 4-byte checksum of it,
the bytes and a 4-byte checksum of them; each record here is a tf.train.Example
of two features, the image's raw bytes and its label. Protobuf's wire format
is read directly (varints and length-delimited fields), which is all these two
features need: no generated classes, no TensorFlow. Records are written
with their checksums (CRC-32C, masked, by google-crc32c), byte for byte what
TensorFlow writes; they are not verified on reading (a GPU machine may lack
google-crc32c), lengths are, so a truncated file fails with its name.
"""

from __future__ import annotations

import glob
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from optbench.components.shared.schema import IMAGE_KEY, IMAGE_SHAPE, LABEL_KEY, split_pattern

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of one protobuf message: an int for a varint, bytes otherwise."""
    at = 0
    while at < len(buf):
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, at = _varint(buf, at)
            yield number, value
        elif wire == LENGTH:
            size, at = _varint(buf, at)
            yield number, buf[at : at + size]
            at += size
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            yield number, buf[at : at + size]
            at += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a message, bytes or a packed list."""
    return _varint_bytes(number << 3 | LENGTH) + _varint_bytes(len(payload)) + payload


def example_bytes(image: bytes, label: int) -> bytes:
    """A tf.train.Example of the image's raw bytes and its label, serialized as TensorFlow does deterministically
    (map keys sorted)."""
    features = {
        IMAGE_KEY: _field(1, _field(1, image)),  # Feature.bytes_list (1) = BytesList{value (1)}
        LABEL_KEY: _field(3, _field(1, _varint_bytes(label))),  # Feature.int64_list (3) = Int64List{packed value}
    }
    entries = b"".join(_field(1, _field(1, k.encode()) + _field(2, v)) for k, v in sorted(features.items()))
    return _field(1, entries)  # Example.features (1) = Features{feature (1): map entries}


def _masked_crc(data: bytes) -> bytes:
    import google_crc32c

    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def write_tfrecords(path: str, records: Iterable[bytes]) -> None:
    """An uncompressed TFRecord file of `records`."""
    with open(path, "wb") as f:
        for record in records:
            length = struct.pack("<Q", len(record))
            f.write(length + _masked_crc(length) + record + _masked_crc(record))


def _bytes(value: int | bytes) -> bytes:
    if isinstance(value, int):
        raise ValueError("not an Example: a varint where a message or bytes belong")
    return value


def parse_example(record: bytes) -> tuple[bytes, int]:
    """(image bytes, label) of one serialized tf.train.Example of the ingest step's schema."""
    image, label = None, None
    for _, entry in _fields(record):  # Example.features (1) -> Features.feature (1): map entries
        for _, item in _fields(_bytes(entry)):
            fields = dict(_fields(_bytes(item)))
            key, feature = _bytes(fields[1]).decode(), _bytes(fields[2])
            kind, values = next(_fields(feature))  # Feature: bytes_list (1), float_list (2), int64_list (3)
            first = next(_fields(_bytes(values)))[1]  # the list's first value
            if key == IMAGE_KEY and kind == 1:
                image = _bytes(first)
            elif key == LABEL_KEY and kind == 3:  # packed varints, or a single varint
                label = first if isinstance(first, int) else _varint(first, 0)[0]
    if image is None or label is None:
        raise ValueError(f"not an Example with {IMAGE_KEY!r} bytes and an int64 {LABEL_KEY!r}")
    return bytes(image), int(label)


def tfrecords(path: str) -> Iterator[bytes]:
    """Every record of one uncompressed TFRecord file."""
    data = Path(path).read_bytes()
    at = 0
    while at < len(data):
        if at + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {at}")
        (size,) = struct.unpack_from("<Q", data, at)
        start = at + 12
        if start + size + 4 > len(data):
            raise ValueError(f"{path}: truncated record at byte {at}")
        yield data[start : start + size]
        at = start + size + 4


def read_split(dataset_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole split as (uint8 images [N,28,28,1], int64 labels [N]), in the shards' order (as tf.data reads
    them with one reader); local folders only."""
    files = sorted(glob.glob(split_pattern(dataset_dir, split)))
    if not files:
        raise FileNotFoundError(
            f"no TFRecords for split {split!r}: nothing matches {split_pattern(dataset_dir, split)}"
        )
    pairs = [parse_example(r) for f in files for r in tfrecords(f)]
    images = np.frombuffer(b"".join(p[0] for p in pairs), np.uint8).reshape(len(pairs), *IMAGE_SHAPE, 1)
    return images, np.array([p[1] for p in pairs], np.int64)
