"""A run's artifacts in Google Cloud Storage, and the same view of a local run folder.

The published layout (optbench/layout.py) renames the local folder's pieces
for people, not for KFP: the dataset, the models, the evaluation and the
report, with `_COMPLETE` (every object's size and CRC32C) written last.

Only a run that succeeded is published, and `_COMPLETE` is written after every
other object has been uploaded and its checksum confirmed by the server. A run
without it is a publish that failed or is still going: readers refuse it, so a
half run never looks like a result. Uploads and downloads retry transient
errors (429, 5xx, dropped connections) with exponential back-off; that is safe
because a run's objects are immutable, so a repeated write writes the same bytes.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import google_crc32c
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from optbench.components.shared.files import read_json
from optbench.components.shared.schema import COMPARISON_JSON, EVAL_SUMMARY_FILE, HISTORY_FILE, STATS_FILE
from optbench.layout import (
    DATA_DIR,
    EVAL_DIR,
    MARKER,
    MODELS_DIR,
    PIPELINE_DIR,
    PIPELINE_LOG,
    REPORT_DIR,
    RUN_JSON,
)

WORKERS = 8
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PublishError(RuntimeError):
    """The run cannot be, or was not, published; nothing was marked complete."""


class ArtifactsError(RuntimeError):
    """The run cannot be read: not found, not complete, or its files do not match their checksums."""


def split_gs(uri: str) -> tuple[str, str]:
    """gs://bucket/some/prefix -> ("bucket", "some/prefix")."""
    if not uri.startswith("gs://") or not uri[5:].split("/", 1)[0]:
        raise ValueError(f"not a gs://BUCKET[/PREFIX] URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def crc32c_of(path: Path) -> str:
    """The file's CRC32C as GCS reports it (base64 of the big-endian 4 bytes)."""
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


def _tree(root: Path, into: str) -> dict[str, Path]:
    return {f"{into}/{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*")) if p.is_file()}


def _outputs_with(kfp_run: Path, contract_file: str) -> list[Path]:
    """The step outputs under a kfp.local run folder that hold `contract_file`: a step's output is known by
    the file its contract says it writes (components/shared/schema.py), not by where kfp.local put it."""
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
        trial = read_json(model_dir / HISTORY_FILE)["trial"]
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


def _read_json_blob(blob: storage.Blob, retry: Retry) -> dict | None:
    if not blob.exists(retry=retry):
        return None
    return json.loads(blob.download_as_bytes(retry=retry, checksum="crc32c"))


def publish_run(
    run_dir: Path,
    dest: str,
    suite: str,
    *,
    client: storage.Client | None = None,
    retry: Retry = DEFAULT_RETRY,
    workers: int = WORKERS,
) -> str:
    """Upload a succeeded local run to gs://BUCKET/PREFIX/<suite>/<run_id>/; returns that URI.

    Publishing the same run again is a no-op once complete, and finishes an
    interrupted publish (the run's files are the same, so are their objects).
    """
    run_dir = Path(run_dir)
    run_json = run_dir / RUN_JSON
    status = read_json(run_json).get("status") if run_json.is_file() else None
    if status != "succeeded" or not (run_dir / REPORT_DIR).is_dir():
        raise PublishError(f"{run_dir}: only a run that succeeded is published (status: {status or 'none'})")
    for label, name in (("suite", suite), ("run id", run_dir.name)):
        if not _SAFE_NAME.match(name):
            raise PublishError(f"{label} {name!r} is not safe in an object name (letters, digits, . _ -)")
    bucket_name, prefix = split_gs(dest)
    run_prefix = "/".join(p for p in (prefix, suite, run_dir.name) if p)
    uri = f"gs://{bucket_name}/{run_prefix}"
    files = run_layout(run_dir)
    manifest = {name: {"size": path.stat().st_size, "crc32c": crc32c_of(path)} for name, path in files.items()}

    bucket = (client or storage.Client()).bucket(bucket_name)
    marker = bucket.blob(f"{run_prefix}/{MARKER}")
    try:
        published = _read_json_blob(marker, retry)
    except Exception as e:
        raise PublishError(f"cannot read {uri}/{MARKER}: {e}") from e
    if published is not None:
        if published["files"] == manifest:
            return uri
        raise PublishError(f"{uri} is already published with different files; publish elsewhere")

    def upload(name: str) -> None:
        blob = bucket.blob(f"{run_prefix}/{name}")
        blob.upload_from_filename(str(files[name]), checksum="crc32c", retry=retry)
        if blob.crc32c != manifest[name]["crc32c"]:
            raise PublishError(
                f"{uri}/{name}: the server stored CRC32C {blob.crc32c}, the file has {manifest[name]['crc32c']}"
            )

    record = {"run_id": run_dir.name, "suite": suite, "published_at": datetime.now(UTC).isoformat(), "files": manifest}
    try:
        _parallel(upload, files, workers)
        marker.upload_from_string(
            json.dumps(record, indent=1, sort_keys=True),
            content_type="application/json",
            checksum="crc32c",
            retry=retry,
        )
    except PublishError:
        raise
    except Exception as e:  # whatever the transport raised once retries ran out
        raise PublishError(
            f"publishing {run_dir} to {uri} failed, so it is not marked complete; publish again to finish it: {e}"
        ) from e
    return uri


@dataclass
class LocalRun:
    """A run folder on this machine, seen through the published layout."""

    run_dir: Path

    @property
    def uri(self) -> str:
        return str(self.run_dir)

    def files(self) -> dict[str, int]:
        return {name: path.stat().st_size for name, path in run_layout(self.run_dir).items()}

    def read_bytes(self, name: str) -> bytes:
        return run_layout(self.run_dir)[name].read_bytes()

    def download(self, names: list[str], dest: Path) -> list[Path]:
        layout = run_layout(self.run_dir)
        out = []
        for name in names:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            out.append(Path(shutil.copyfile(layout[name], target)))
        return out


@dataclass
class GcsRun:
    """A published run; only complete ones (with their marker) can be opened."""

    bucket: storage.Bucket
    prefix: str
    manifest: dict[str, dict]
    retry: Retry = DEFAULT_RETRY
    workers: int = WORKERS

    @classmethod
    def open(cls, uri: str, client: storage.Client | None = None, retry: Retry = DEFAULT_RETRY) -> GcsRun:
        bucket_name, prefix = split_gs(uri)
        bucket = (client or storage.Client()).bucket(bucket_name)
        record = _read_json_blob(bucket.blob(f"{prefix}/{MARKER}"), retry)
        if record is None:
            raise ArtifactsError(
                f"{uri}: no complete run here (no {MARKER} marker: not published, "
                "or a publish that failed or is still going)"
            )
        return cls(bucket, prefix, record["files"], retry)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket.name}/{self.prefix}"

    def files(self) -> dict[str, int]:
        return {name: entry["size"] for name, entry in self.manifest.items()}

    def _check(self, name: str, crc32c: str) -> None:
        if crc32c != self.manifest[name]["crc32c"]:
            raise ArtifactsError(
                f"{self.uri}/{name}: CRC32C {crc32c} differs from the published {self.manifest[name]['crc32c']}"
            )

    def read_bytes(self, name: str) -> bytes:
        blob = self.bucket.blob(f"{self.prefix}/{name}")
        data = blob.download_as_bytes(retry=self.retry, checksum="crc32c")
        self._check(name, base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii"))
        return data

    def download(self, names: list[str], dest: Path) -> list[Path]:
        def fetch(name: str) -> None:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.bucket.blob(f"{self.prefix}/{name}").download_to_filename(
                str(target), checksum="crc32c", retry=self.retry
            )
            self._check(name, crc32c_of(target))

        _parallel(fetch, names, self.workers)
        return [dest / name for name in names]


RunArtifacts = LocalRun | GcsRun


def open_run(
    ref: str, root: str = "runs", client: storage.Client | None = None, retry: Retry = DEFAULT_RETRY
) -> RunArtifacts:
    """A run by folder, by gs:// URI, or by run id under `root` (a local folder or a gs://BUCKET/PREFIX)."""
    if ref.startswith("gs://"):
        return GcsRun.open(ref, client, retry)
    if Path(ref).is_dir():
        return LocalRun(Path(ref))
    if not _SAFE_NAME.match(ref):
        raise ArtifactsError(f"{ref!r} is neither a run folder, a gs:// URI, nor a run id")
    if not root.startswith("gs://"):
        if (Path(root) / ref).is_dir():
            return LocalRun(Path(root) / ref)
        raise ArtifactsError(f"no run {ref} in {root}/ (give --root gs://BUCKET/PREFIX for published runs)")
    bucket_name, prefix = split_gs(root)
    client = client or storage.Client()
    markers = [
        b.name
        for b in client.list_blobs(
            bucket_name, prefix=f"{prefix}/" if prefix else None, match_glob=f"**/{ref}/{MARKER}", retry=retry
        )
    ]
    if len(markers) != 1:
        found = "none" if not markers else ", ".join(f"gs://{bucket_name}/{m}" for m in markers)
        raise ArtifactsError(f"expected one complete run {ref} under {root}, found {found}")
    return GcsRun.open(f"gs://{bucket_name}/{markers[0].rsplit('/', 1)[0]}", client, retry)


def best_variant(rows: list[dict]) -> tuple[str, float] | None:
    """(name, test accuracy) of the row a comparison.json flags as best, or None when it flags none."""
    best = next((r for r in rows if r.get("best")), None)
    return (best["optimizer"], float(best["test_accuracy"])) if best else None


def cluster_comparison(
    pipeline_root: str,
    pipeline_name: str,
    run_id: str,
    client: storage.Client | None = None,
    retry: Retry = DEFAULT_RETRY,
) -> list[dict] | None:
    """The comparison.json a cluster run wrote under its pipeline root, or None if there is none (yet).

    KFP puts a run's artifacts under <pipeline_root>/<pipeline name>/<run id>/<task>/..., and
    the nesting below the task differs between KFP versions, so the file is found by glob: the
    report step is the one step that writes a comparison.json.
    """
    bucket_name, prefix = split_gs(pipeline_root)
    run_prefix = "/".join(p for p in (prefix, pipeline_name, run_id) if p) + "/"
    client = client or storage.Client()
    blobs = list(client.list_blobs(bucket_name, prefix=run_prefix, match_glob=f"**/{COMPARISON_JSON}", retry=retry))
    if not blobs:
        return None
    return json.loads(blobs[0].download_as_bytes(retry=retry, checksum="crc32c"))
