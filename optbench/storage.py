"""A run's artifacts in Google Cloud Storage, and the same view of a local run folder.

The published layout renames the local folder's pieces
for people, not for KFP: the dataset, the models, the evaluation and the
report, with `_COMPLETE` (every object's size and CRC32C) written last.

Only a run that succeeded is published, and `_COMPLETE` is written after every
other object has been uploaded and its checksum confirmed by the server. A run
without it is a publish that failed or is still going: readers refuse it, so a
half run never looks like a result. Uploads and downloads retry transient
errors (429, 5xx, dropped connections, timeouts) with exponential back-off; that
is safe because a run's objects are immutable, so a repeated write writes the same
bytes.

A bucket is shared, so what it holds is untrusted (docs/threat-model.md): a
manifest's names are checked to stay inside the destination before anything is
written, no object is read past the size its manifest gives, a download lands
under a temporary name and is moved into place only once every file matched its
checksum, and the remote budget is bounded: REQUEST_TIMEOUT per request,
RETRY_DEADLINE for the retries of one call, CALL_DEADLINE (plus the bytes'
time) for the whole call however the server trickles; a missing object or a refused
permission is not retried. Every failure is one ArtifactsError or PublishError
naming the object.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import google_crc32c
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from optbench.components.shared.artifacts import SKIPPED
from optbench.components.shared.deadline import DeadlineExceeded, within
from optbench.components.shared.files import read_json
from optbench.components.shared.schema import COMPARISON_JSON, EVAL_SUMMARY_FILE, HISTORY_FILE, STATS_FILE
from optbench.components.shared.untrusted import UntrustedInput, inside, plain_name, relative_name
from optbench.layout import (
    DATA_DIR,
    EVAL_DIR,
    MARKER,
    MODELS_DIR,
    PIPELINE_DIR,
    PIPELINE_LOG,
    REPORT_DIR,
    RUN_JSON,
    comparison_rows,
)
from optbench.ownership import describe, holder

T = TypeVar("T")
WORKERS = 8
REQUEST_TIMEOUT = 15.0  # seconds one request may take (connect or read) before it counts as failed
RETRY_DEADLINE = 30.0  # seconds of retries with back-off for one call, then it fails
RETRY = DEFAULT_RETRY.with_timeout(RETRY_DEADLINE)
CALL_DEADLINE = 120.0  # seconds one call may take in all, its retries included, plus its bytes' time at:
MIN_BYTES_PER_SECOND = 1 << 20  # the slowest transfer a healthy link gives; below it, it is trickling
MAX_MANIFEST_BYTES = 16 << 20  # a _COMPLETE of ~100,000 files
MAX_OBJECT_BYTES = 8 << 30  # what a manifest may claim for one object
MAX_JSON_BYTES = 64 << 20  # a comparison.json read into memory
_CRC32C = re.compile(r"[A-Za-z0-9+/]{6}==")  # base64 of 4 bytes
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


class PublishError(RuntimeError):
    """The run cannot be, or was not, published; nothing was marked complete."""


class ArtifactsError(RuntimeError):
    """The run cannot be read: not found, not complete, or its files do not match their checksums."""


def split_gs(uri: str) -> tuple[str, str]:
    """gs://bucket/some/prefix -> ("bucket", "some/prefix"); a prefix with `..`, `//` or odd characters is refused."""
    bucket, _, prefix = uri[5:].partition("/") if uri.startswith("gs://") else ("", "", "")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"not a gs://BUCKET[/PREFIX] URI: {uri!r}")
    prefix = prefix.rstrip("/")
    if prefix:
        relative_name(prefix, f"the prefix of {uri}")
    return bucket, prefix


@contextmanager
def _remote(what: str, error: type[Exception] = ArtifactsError) -> Iterator[None]:
    """Turn what the storage client raises about `what` (a gs:// object or prefix) into one `error` naming it."""
    try:
        yield
    except api_exceptions.NotFound:
        raise error(f"{what}: no such object") from None
    except api_exceptions.Forbidden as e:
        raise error(f"{what}: permission denied ({e.message})") from None
    except api_exceptions.RetryError as e:
        raise error(f"{what}: gave up after retrying for {RETRY_DEADLINE:.0f}s: {e.cause or e}") from None
    except (api_exceptions.GoogleAPICallError, requests.RequestException, ConnectionError) as e:
        raise error(f"{what}: {e}") from None
    except DeadlineExceeded as e:
        raise error(str(e)) from None


def _bounded(what: str, call: Callable[[], T], size: int = 0) -> T:
    """`call()` (one storage call about `what`, moving `size` bytes) within its total deadline: CALL_DEADLINE,
    plus the time the bytes take at MIN_BYTES_PER_SECOND. REQUEST_TIMEOUT bounds each wait, RETRY_DEADLINE
    the retries; neither stops a server that trickles."""
    return within(CALL_DEADLINE + size / MIN_BYTES_PER_SECOND, what, call)


def crc32c_of(path: Path) -> str:
    """The file's CRC32C as GCS reports it (base64 of the big-endian 4 bytes)."""
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


def _tree(root: Path, into: str) -> dict[str, Path]:
    """Object name -> file for every file under `root`; a symbolic link (it could name any file here) is refused."""
    links = [p for p in root.rglob("*") if p.is_symlink()]
    if links:
        raise ArtifactsError(f"{links[0]}: a symbolic link in a run folder; only the run's own files are published")
    return {f"{into}/{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*")) if p.is_file()}


def _outputs_with(kfp_run: Path, contract_file: str) -> list[Path]:
    """The step outputs under a kfp.local run folder that hold `contract_file`: a step's output is known by
    the file its contract says it writes, not by where kfp.local put it."""
    return sorted(p.parent for p in kfp_run.rglob(contract_file))


def run_layout(run_dir: Path) -> dict[str, Path]:
    """Object name in the published layout -> local file, for a run folder made by `optbench run`."""
    runs = [p for p in (run_dir / PIPELINE_DIR).glob("*") if p.is_dir()]
    if len(runs) != 1:
        raise ArtifactsError(f"{run_dir}: expected one KFP run folder under {PIPELINE_DIR}/, found {len(runs)}")
    kfp_run = runs[0]
    files = {name: run_dir / name for name in (RUN_JSON, PIPELINE_LOG) if (run_dir / name).is_file()}
    files.update(_tree(run_dir / REPORT_DIR, REPORT_DIR))
    for folder, contract_file in ((DATA_DIR, STATS_FILE), (EVAL_DIR, EVAL_SUMMARY_FILE)):
        found = _outputs_with(kfp_run, contract_file)
        if len(found) != 1:
            raise ArtifactsError(f"{run_dir}: expected one step output with {contract_file}, found {len(found)}")
        files.update(_tree(found[0], folder))
    for model_dir in _outputs_with(kfp_run, HISTORY_FILE):
        history = read_json(model_dir / HISTORY_FILE)
        if history.get("status") == SKIPPED:  # a placeholder of a round that trained nothing: no model
            continue
        trial = plain_name(history.get("trial"), f"{model_dir / HISTORY_FILE}: trial")
        if any(name.startswith(f"{MODELS_DIR}/{trial}/") for name in files):
            raise ArtifactsError(f"{run_dir}: two trained models claim trial {trial!r}")
        files.update(_tree(model_dir, f"{MODELS_DIR}/{trial}"))
    return files


def _parallel(work: Callable[[str], None], names: Iterable[str], workers: int) -> None:
    """Run `work` on every name; the first failure cancels what has not started and is raised."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, name) for name in names]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _read_json_blob(bucket: storage.Bucket, name: str, limit: int, retry: Retry) -> object | None:
    """The JSON object `name` holds, None when there is none; refused when larger than `limit` or not JSON."""
    what = f"gs://{bucket.name}/{name}"
    with _remote(what):
        blob = _bounded(what, lambda: bucket.get_blob(name, retry=retry, timeout=REQUEST_TIMEOUT))
        if blob is None:
            return None
        if (blob.size or 0) > limit:
            raise ArtifactsError(f"{what}: {blob.size:,} bytes, more than the {limit:,} such a file may have")
        data = _bounded(
            what,
            lambda: blob.download_as_bytes(retry=retry, checksum="crc32c", timeout=REQUEST_TIMEOUT),
            blob.size or 0,
        )
    try:
        return json.loads(data[: limit + 1])
    except ValueError as e:
        raise ArtifactsError(f"{what}: not JSON ({e})") from None


def _manifest(record: object, what: str) -> dict[str, dict]:
    """The files of a _COMPLETE record, each name a relative path and each entry {size, crc32c}; else refused."""
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not files:
        raise ArtifactsError(f"{what}: not a manifest of this run's files")
    for name, entry in files.items():
        try:
            relative_name(name, f"{what}: object")
        except UntrustedInput as e:
            raise ArtifactsError(str(e)) from None
        size = entry.get("size") if isinstance(entry, dict) else None
        crc = entry.get("crc32c") if isinstance(entry, dict) else None
        if type(size) is not int or not 0 <= size <= MAX_OBJECT_BYTES or not isinstance(crc, str):
            raise ArtifactsError(f"{what}: {name!r} has no valid size (0-{MAX_OBJECT_BYTES:,}) and crc32c")
        if not _CRC32C.fullmatch(crc):
            raise ArtifactsError(f"{what}: {name!r} has crc32c {crc!r}, not the base64 of 4 bytes")
    return files


@contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A temporary folder beside `dest`, removed at the end: files are fetched there, moved into `dest` at once."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _download_all(names: list[str], dest: Path, fetch: Callable[[str, Path], None], workers: int) -> list[Path]:
    """Fetch every name to dest/<name>: all checked inside `dest` first, all fetched, then all moved in place.

    A failure leaves `dest` as it was: never a file that looks complete but is not, never one outside it.
    """
    try:
        targets = [inside(dest, name, "file") for name in names]
    except UntrustedInput as e:
        raise ArtifactsError(f"{e}: nothing was downloaded") from None
    with _staging(dest) as stage:
        _parallel(lambda name: fetch(name, stage / name), names, workers)
        for name, target in zip(names, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / name, target)
    return targets


def publish_run(
    run_dir: Path,
    dest: str,
    suite: str,
    *,
    client: storage.Client | None = None,
    retry: Retry = RETRY,
    workers: int = WORKERS,
) -> str:
    """Upload a succeeded local run to gs://BUCKET/PREFIX/<suite>/<run_id>/; returns that URI.

    Publishing the same run again is a no-op once complete, and finishes an
    interrupted publish (the run's files are the same, so are their objects).
    """
    run_dir = Path(run_dir)
    if (writer := holder(run_dir)) is not None:
        raise PublishError(f"{run_dir} is still being written by {describe(writer)}: publish it once that ends")
    run_json = run_dir / RUN_JSON
    status = read_json(run_json).get("status") if run_json.is_file() else None
    if status != "succeeded" or not (run_dir / REPORT_DIR).is_dir():
        raise PublishError(f"{run_dir}: only a run that succeeded is published (status: {status or 'none'})")
    try:
        plain_name(suite, "suite")
        plain_name(run_dir.name, "run id")
    except UntrustedInput as e:
        raise PublishError(str(e)) from None
    bucket_name, prefix = split_gs(dest)
    run_prefix = "/".join(p for p in (prefix, suite, run_dir.name) if p)
    uri = f"gs://{bucket_name}/{run_prefix}"
    files = run_layout(run_dir)
    manifest = {name: {"size": path.stat().st_size, "crc32c": crc32c_of(path)} for name, path in files.items()}

    bucket = (client or storage.Client()).bucket(bucket_name)
    marker = bucket.blob(f"{run_prefix}/{MARKER}")
    try:
        published = _read_json_blob(bucket, marker.name, MAX_MANIFEST_BYTES, retry)
    except ArtifactsError as e:
        raise PublishError(f"cannot read what is published there: {e}") from None
    if published is not None:
        if isinstance(published, dict) and published.get("files") == manifest:
            return uri
        raise PublishError(f"{uri} is already published with different files; publish elsewhere")

    def upload(name: str) -> None:
        blob = bucket.blob(f"{run_prefix}/{name}")
        with _remote(f"{uri}/{name}", PublishError):
            _bounded(
                f"{uri}/{name}",
                lambda: blob.upload_from_filename(
                    str(files[name]), checksum="crc32c", retry=retry, timeout=REQUEST_TIMEOUT
                ),
                files[name].stat().st_size,
            )
        if blob.crc32c != manifest[name]["crc32c"]:
            raise PublishError(
                f"{uri}/{name}: the server stored CRC32C {blob.crc32c}, the file has {manifest[name]['crc32c']}"
            )

    record = {"run_id": run_dir.name, "suite": suite, "published_at": datetime.now(UTC).isoformat(), "files": manifest}
    try:
        _parallel(upload, files, workers)
        _write_marker(marker, record, uri, retry)
    except PublishError as e:
        raise PublishError(
            f"publishing {run_dir} to {uri} failed, so it is not marked complete; publish again to finish it: {e}"
        ) from None
    return uri


def _write_marker(marker: storage.Blob, record: dict, uri: str, retry: Retry) -> None:
    with _remote(f"{uri}/{MARKER}", PublishError):
        _bounded(
            f"{uri}/{MARKER}",
            lambda: marker.upload_from_string(
                json.dumps(record, indent=1, sort_keys=True),
                content_type="application/json",
                checksum="crc32c",
                retry=retry,
                timeout=REQUEST_TIMEOUT,
            ),
        )


def _markers(root: str, runs: str, client: storage.Client, retry: Retry) -> list[str]:
    """The names of the markers of the complete runs under `root` (gs://BUCKET/PREFIX) whose folders match the
    glob `runs`."""
    bucket_name, prefix = split_gs(root)
    with _remote(root):
        listing = client.list_blobs(
            bucket_name,
            prefix=f"{prefix}/" if prefix else None,
            match_glob=f"{runs}/{MARKER}",
            retry=retry,
            timeout=REQUEST_TIMEOUT,
        )
        return [b.name for b in _bounded(root, lambda: list(listing))]


@dataclass(frozen=True)
class Published:
    """A complete published run as its marker describes it: where, its suite, when, and the marker's record."""

    uri: str
    suite: str
    published_at: str
    record: dict

    @property
    def run_id(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def files(self) -> dict[str, dict]:
        return self.record["files"]


def published_runs(
    root: str, client: storage.Client | None = None, retry: Retry = RETRY
) -> tuple[list[Published], list[str]]:
    """Every complete run published under `root` (gs://BUCKET/PREFIX), and a note on each marker that is not
    one (unreadable, not a manifest, names that are not plain): those are left alone."""
    bucket_name, _ = split_gs(root)
    client = client or storage.Client()
    bucket = client.bucket(bucket_name)
    markers = _markers(root, "**", client, retry)
    found, notes = [], []
    for name in markers:
        uri = f"gs://{bucket_name}/{name.rsplit('/', 1)[0]}"
        try:
            record = _read_json_blob(bucket, name, MAX_MANIFEST_BYTES, retry)
            if not isinstance(record, dict):
                raise ArtifactsError(f"{uri}/{MARKER}: not a run's marker (a JSON mapping)")
            _manifest(record, f"{uri}/{MARKER}")
            suite = plain_name(record.get("suite"), f"{uri}/{MARKER}: suite")
            _run_id(uri.rsplit("/", 1)[-1], uri)
        except (ArtifactsError, UntrustedInput) as e:
            notes.append(f"{uri}: {e}: left alone")
            continue
        found.append(Published(uri, suite, str(record.get("published_at", "")), record))
    return found, notes


def unpublish(
    run: Published,
    names: list[str],
    note: dict,
    client: storage.Client | None = None,
    retry: Retry = RETRY,
    workers: int = WORKERS,
) -> None:
    """Delete the objects `names` of a published run. Its marker loses them first (and gains `note`), so at no
    moment does a marker name an object that is gone; a delete that fails leaves an object no marker names,
    which the next prune finds no more (the bucket's lifecycle rule ages it out)."""
    bucket_name, prefix = split_gs(run.uri)
    bucket = (client or storage.Client()).bucket(bucket_name)
    gone = set(names)
    record = {**run.record, **note, "files": {n: e for n, e in run.files.items() if n not in gone}}
    _write_marker(bucket.blob(f"{prefix}/{MARKER}"), record, run.uri, retry)

    def delete(name: str) -> None:
        with _remote(f"{run.uri}/{name}", PublishError), suppress(api_exceptions.NotFound):
            _bounded(
                f"{run.uri}/{name}",
                lambda: bucket.blob(f"{prefix}/{name}").delete(retry=retry, timeout=REQUEST_TIMEOUT),
            )

    _parallel(delete, sorted(gone), workers)


@dataclass
class LocalRun:
    """A run folder on this machine, seen through the published layout."""

    run_dir: Path

    @property
    def uri(self) -> str:
        return str(self.run_dir)

    @property
    def run_id(self) -> str:
        return _run_id(self.run_dir.resolve().name, self.uri)

    def files(self) -> dict[str, int]:
        return {name: path.stat().st_size for name, path in run_layout(self.run_dir).items()}

    def read_bytes(self, name: str) -> bytes:
        return run_layout(self.run_dir)[name].read_bytes()

    def download(self, names: list[str], dest: Path) -> list[Path]:
        layout = run_layout(self.run_dir)
        return _download_all(names, dest, lambda name, to: _copy(layout[name], to), workers=1)


def _copy(src: Path, to: Path) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, to)


def _run_id(name: str, where: str) -> str:
    try:
        return plain_name(name, f"{where}: run id")
    except UntrustedInput as e:
        raise ArtifactsError(str(e)) from None


@dataclass
class GcsRun:
    """A published run; only complete ones (with their marker) can be opened."""

    bucket: storage.Bucket
    prefix: str
    manifest: dict[str, dict]
    retry: Retry = RETRY
    workers: int = WORKERS

    @classmethod
    def open(cls, uri: str, client: storage.Client | None = None, retry: Retry = RETRY) -> GcsRun:
        bucket_name, prefix = split_gs(uri)
        _run_id(prefix.rsplit("/", 1)[-1], uri)
        bucket = (client or storage.Client()).bucket(bucket_name)
        record = _read_json_blob(bucket, f"{prefix}/{MARKER}", MAX_MANIFEST_BYTES, retry)
        if record is None:
            raise ArtifactsError(
                f"{uri}: no complete run here (no {MARKER} marker: not published, "
                "or a publish that failed or is still going)"
            )
        return cls(bucket, prefix, _manifest(record, f"{uri}/{MARKER}"), retry)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket.name}/{self.prefix}"

    @property
    def run_id(self) -> str:
        return _run_id(self.prefix.rsplit("/", 1)[-1], self.uri)

    def files(self) -> dict[str, int]:
        return {name: entry["size"] for name, entry in self.manifest.items()}

    def _check(self, name: str, crc32c: str) -> None:
        if crc32c != self.manifest[name]["crc32c"]:
            raise ArtifactsError(
                f"{self.uri}/{name}: CRC32C {crc32c} differs from the published {self.manifest[name]['crc32c']}"
            )

    def _range(self, size: int) -> dict:
        """A download's arguments: the first `size` bytes only (its CRC32C is checked by us, on what arrived)."""
        return {"start": 0, "end": size - 1, "checksum": None, "retry": self.retry, "timeout": REQUEST_TIMEOUT}

    def _fetch(self, name: str, to: Path) -> None:
        """Object `name` into file `to`, never reading past the size the manifest gives it; then its checksum."""
        to.parent.mkdir(parents=True, exist_ok=True)
        size = self.manifest[name]["size"]
        if size == 0:
            to.write_bytes(b"")
        else:
            blob = self.bucket.blob(f"{self.prefix}/{name}")
            with _remote(f"{self.uri}/{name}"):
                _bounded(f"{self.uri}/{name}", lambda: blob.download_to_filename(str(to), **self._range(size)), size)
        self._check(name, crc32c_of(to))

    def read_bytes(self, name: str) -> bytes:
        size = self.manifest[name]["size"]
        if size > MAX_JSON_BYTES:
            raise ArtifactsError(f"{self.uri}/{name}: larger than the {MAX_JSON_BYTES:,} bytes read into memory")
        blob = self.bucket.blob(f"{self.prefix}/{name}")
        with _remote(f"{self.uri}/{name}"):
            data = (
                _bounded(f"{self.uri}/{name}", lambda: blob.download_as_bytes(**self._range(size)), size)
                if size
                else b""
            )
        self._check(name, base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii"))
        return data

    def download(self, names: list[str], dest: Path) -> list[Path]:
        return _download_all(names, dest, self._fetch, self.workers)


RunArtifacts = LocalRun | GcsRun


def open_run(ref: str, root: str = "runs", client: storage.Client | None = None, retry: Retry = RETRY) -> RunArtifacts:
    """A run by folder, by gs:// URI, or by run id under `root` (a local folder or a gs://BUCKET/PREFIX)."""
    if ref.startswith("gs://"):
        return GcsRun.open(ref, client, retry)
    if Path(ref).is_dir():
        return LocalRun(Path(ref))
    try:
        plain_name(ref, "run id")
    except UntrustedInput as e:
        raise ArtifactsError(f"{ref!r} is neither a run folder, a gs:// URI, nor a run id ({e})") from None
    if not root.startswith("gs://"):
        if (Path(root) / ref).is_dir():
            return LocalRun(Path(root) / ref)
        raise ArtifactsError(f"no run {ref} in {root}/ (give --root gs://BUCKET/PREFIX for published runs)")
    bucket_name, _ = split_gs(root)
    client = client or storage.Client()
    markers = _markers(root, f"**/{ref}", client, retry)
    if len(markers) != 1:
        found = "none" if not markers else ", ".join(f"gs://{bucket_name}/{m}" for m in markers)
        raise ArtifactsError(f"expected one complete run {ref} under {root}, found {found}")
    return GcsRun.open(f"gs://{bucket_name}/{markers[0].rsplit('/', 1)[0]}", client, retry)


def best_variant(rows: object, what: str = COMPARISON_JSON) -> tuple[str, float] | None:
    """(name, test accuracy) of the row a comparison.json flags as best, or None when it flags none."""
    best = next((r for r in comparison_rows(rows, what) if r.get("best")), None)
    return (best["optimizer"], best["test_accuracy"]) if best else None


def cluster_comparison(
    pipeline_root: str,
    pipeline_name: str,
    run_id: str,
    client: storage.Client | None = None,
    retry: Retry = RETRY,
) -> list[dict] | None:
    """The comparison.json a cluster run wrote under its pipeline root, or None if there is none (yet).

    KFP puts a run's artifacts under <pipeline_root>/<pipeline name>/<run id>/<task>/..., and
    the nesting below the task differs between KFP versions, so the file is found by glob: the
    report step is the one step that writes a comparison.json.
    """
    bucket_name, prefix = split_gs(pipeline_root)
    run_prefix = "/".join(p for p in (prefix, pipeline_name, run_id) if p) + "/"
    client = client or storage.Client()
    with _remote(f"gs://{bucket_name}/{run_prefix}"):
        listing = client.list_blobs(
            bucket_name, prefix=run_prefix, match_glob=f"**/{COMPARISON_JSON}", retry=retry, timeout=REQUEST_TIMEOUT
        )
        blobs = _bounded(f"gs://{bucket_name}/{run_prefix}", lambda: list(listing))
    if not blobs:
        return None
    rows = _read_json_blob(client.bucket(bucket_name), blobs[0].name, MAX_JSON_BYTES, retry)
    return comparison_rows(rows, f"gs://{bucket_name}/{blobs[0].name}")
