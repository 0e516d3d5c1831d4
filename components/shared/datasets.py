"""The datasets optbench knows by name, and how a source's content is recognised as one of them.

Two kinds of evidence, each where it means something:
- the *published checksums* of the original `.gz` files, byte for byte: they
  identify those very files (a mirror's download, a folder holding them), and
  nothing else, since any re-compression changes them;
- the *content fingerprint*, sha256 of a split's decoded images and labels:
  the same whatever the compression or container (IDX, npz), so it
  recognises a known split in any form, and names an unknown one.

A split is known when either matches. The fingerprints were computed here
from genuine copies: MNIST's test split from the published files (their MD5s
match LeCun's), Fashion-MNIST's from Debian's `dataset-fashion-mnist`.
MNIST's 60,000-digit training split could not be fetched where this was
written, so it is recognised by its published checksums only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The IDX files of a dataset's two splits, under the names MNIST made standard.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLITS = tuple(SPLIT_FILES)  # the source's splits: train, test


@dataclass(frozen=True)
class KnownDataset:
    name: str  # what --dataset takes
    title: str  # what the report calls it
    class_names: tuple[str, ...]
    published: dict[str, str]  # original .gz file name -> "<algorithm>:<hex digest>" of the published file
    mirrors: tuple[str, ...]  # URL prefixes serving the published files
    offline: tuple[str, ...] = ()  # folders where a system package puts genuine copies
    fingerprints: dict[str, str] = field(default_factory=dict)  # split -> content fingerprint, where known


MNIST = KnownDataset(
    name="mnist",
    title="MNIST",
    class_names=tuple(str(d) for d in range(10)),
    published={
        "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    fingerprints={"test": "68e715da31a3d2f9dc2418647455027f604524ba44a548a945b23f8acfc63b3b"},
)

FASHION_MNIST = KnownDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    # zalandoresearch/fashion-mnist's README publishes MD5s; Debian's copy is re-compressed, so it is known by content.
    published={
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    offline=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
    fingerprints={
        "train": "6389f057f38ea6565056caed09a023c2eda5febf7a25e26053c96543e3de54dd",
        "test": "4550bfc5695e344bbd7f9e50df2d11cee3c8e1cd3f7505942a540472f0d01dfd",
    },
)

KNOWN = {d.name: d for d in (MNIST, FASHION_MNIST)}
UNKNOWN = "unknown"


def class_names(stats: dict) -> list[str]:
    """The class names an ingest's stats.json records: a known dataset's, or the class indices."""
    return stats["dataset"]["class_names"]


def known(name: str) -> KnownDataset:
    """The dataset called `name`; a name we do not know gets the list of those we do."""
    try:
        return KNOWN[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(KNOWN)}") from None


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of a split's decoded pixels and labels, in order: independent of compression and container."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images, np.uint8).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(labels, np.uint8).tobytes())
    return h.hexdigest()


def file_digest(path: str | Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return f"{algorithm}:{hashlib.file_digest(f, algorithm).hexdigest()}"


def is_published(path: str | Path, dataset: KnownDataset) -> bool:
    """Whether `path` is, byte for byte, the published file of `dataset` with its name."""
    published = dataset.published.get(Path(path).name)
    return published is not None and file_digest(path, published.partition(":")[0]) == published


def identify(fingerprints: dict[str, str], folder: str | Path) -> dict[str, str]:
    """split -> the known dataset whose split this is, by content or by the published files; else UNKNOWN."""
    found = {}
    for split in SPLITS:
        found[split] = UNKNOWN
        for dataset in KNOWN.values():
            by_content = dataset.fingerprints.get(split) == fingerprints[split]
            if by_content or all(is_published(Path(folder, name), dataset) for name in SPLIT_FILES[split]):
                found[split] = dataset.name
                break
    return found
