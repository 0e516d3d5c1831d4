"""Publishing runs to Google Cloud Storage and reading them back, against gcp-storage-emulator.

The emulator is a real HTTP server the google-cloud-storage client talks to
through STORAGE_EMULATOR_HOST; no client is mocked. Faults are injected by a
small HTTP proxy in front of it that fails the requests a test picks.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from helpers import RUN_ID, fake_run, write

from optbench.cli.artifacts import artifacts
from optbench.cli.cluster import runs
from optbench.layout import MARKER
from optbench.storage import ArtifactsError, GcsRun, PublishError, best_variant, publish_run, run_layout

FAST_RETRY = DEFAULT_RETRY.with_timeout(1.5).with_delay(initial=0.05, maximum=0.2)


class FaultyProxy:
    """A real HTTP proxy to the emulator; `fault(method, path)` returns a status to fail with, or None to pass.

    `seen` records (method, path, status, name of the object the response describes) for every request.
    """

    def __init__(self, upstream: int, fault: Callable[[str, str], int | None] = lambda m, p: None) -> None:
        self.fault = fault
        self.seen: list[tuple[str, str, int, str | None]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = proxy.fault(self.command, self.path)
                if status:
                    data, headers = b'{"error": {"code": %d, "message": "injected"}}' % status, {}
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=10)
                    conn.request(self.command, self.path, body, dict(self.headers))
                    response = conn.getresponse()
                    status, data, headers = response.status, response.read(), dict(response.getheaders())
                    conn.close()
                name = json.loads(data)["name"] if status == 200 and self.path.startswith("/upload/") else None
                proxy.seen.append((self.command, self.path, status, name))
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _relay

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def uploads(self) -> list[tuple[str, str, int, str | None]]:
        return [s for s in self.seen if s[1].startswith("/upload/")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(emulator, monkeypatch):
    """A FaultyProxy the storage client is pointed at instead of the emulator."""
    faulty = FaultyProxy(emulator[1])
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", faulty.url)
    yield faulty
    faulty.close()


def objects(bucket: storage.Bucket, prefix: str) -> dict[str, bytes]:
    return {b.name[len(prefix) + 1 :]: b.download_as_bytes() for b in bucket.list_blobs(prefix=prefix + "/")}


def test_layout_maps_the_local_run_onto_data_models_eval_report(tmp_path):
    run = fake_run(tmp_path)
    layout = run_layout(run)
    assert {name.split("/")[0] for name in layout} == {"run.json", "pipeline.log", "data", "models", "eval", "report"}
    assert {n for n in layout if n.startswith("models/")} == {
        f"models/{t}/{f}"
        for t in ("adam.s0", "sgd.s0")
        for f in ("history.json", "saved_model/saved_model.pb", "saved_model/variables/variables.data-00000-of-00001")
    }
    assert (
        layout["data/train/part-00001-of-00002.tfrecord"].read_bytes()
        == (run / "pipeline").glob("*/ingest/dataset/train/part-00001-of-00002.tfrecord").__next__().read_bytes()
    )
    assert not any("executor_output" in n or "weights.h5" in n for n in layout)


def test_publish_uploads_every_file_checksummed_and_the_marker_last(gcs, proxy, tmp_path):
    client, bucket = gcs
    run = fake_run(tmp_path)
    uri = publish_run(run, f"gs://{bucket.name}/team/optbench", "seed-004", client=storage.Client())
    prefix = f"team/optbench/seed-004/{RUN_ID}"
    assert uri == f"gs://{bucket.name}/{prefix}"

    stored = objects(bucket, prefix)
    marker = json.loads(stored.pop(MARKER))
    layout = run_layout(run)
    assert stored == {name: path.read_bytes() for name, path in layout.items()}
    assert set(marker["files"]) == set(layout) and marker["run_id"] == RUN_ID and marker["suite"] == "seed-004"
    for name, entry in marker["files"].items():
        blob = bucket.get_blob(f"{prefix}/{name}")
        assert (blob.size, blob.crc32c) == (entry["size"], entry["crc32c"])

    uploads = proxy.uploads()
    assert len(uploads) == len(layout) + 1
    assert [name for *_, name in uploads][-1] == f"{prefix}/{MARKER}", "the marker is the last object written"
    assert all(status == 200 for _, _, status, _ in uploads)


def test_publish_retries_transient_errors(gcs, proxy, tmp_path):
    _, bucket = gcs
    failures = {"left": 3}

    def flaky(method: str, path: str) -> int | None:
        if path.startswith("/upload/") and failures["left"]:
            failures["left"] -= 1
            return 503
        return None

    proxy.fault = flaky
    run = fake_run(tmp_path)
    uri = publish_run(run, f"gs://{bucket.name}", "seed-004", retry=FAST_RETRY, workers=2)
    assert [status for _, _, status, _ in proxy.uploads()].count(503) == 3
    assert set(GcsRun.open(uri).files()) == set(run_layout(run))


def test_a_publish_that_fails_midway_is_never_complete_and_can_be_finished(gcs, proxy, tmp_path):
    _, bucket = gcs
    run = fake_run(tmp_path)
    passed = {"uploads": 0}

    def dies_after_four(method: str, path: str) -> int | None:
        if path.startswith("/upload/"):
            passed["uploads"] += 1
            return 503 if passed["uploads"] > 4 else None
        return None

    proxy.fault = dies_after_four
    with pytest.raises(PublishError, match="not marked complete"):
        publish_run(run, f"gs://{bucket.name}/p", "seed-004", retry=FAST_RETRY, workers=1)
    prefix = f"p/seed-004/{RUN_ID}"
    partial = objects(bucket, prefix)
    assert 0 < len(partial) < len(run_layout(run)) and MARKER not in partial
    with pytest.raises(ArtifactsError, match="no complete run"):
        GcsRun.open(f"gs://{bucket.name}/{prefix}")
    result = CliRunner().invoke(artifacts, ["ls", f"gs://{bucket.name}/{prefix}"])
    assert result.exit_code != 0 and "no complete run" in result.output

    proxy.fault = lambda m, p: None
    uri = publish_run(run, f"gs://{bucket.name}/p", "seed-004", retry=FAST_RETRY)
    assert set(GcsRun.open(uri).files()) == set(run_layout(run))


def test_publish_with_the_storage_server_down_fails_fast_and_clearly(emulator, tmp_path):
    server, port = emulator
    server.stop()
    with pytest.raises(PublishError, match=f"gs://bkt/seed-004/{RUN_ID}"):
        publish_run(fake_run(tmp_path), "gs://bkt", "seed-004", retry=FAST_RETRY)


@pytest.mark.parametrize("status", ["failed", "running"])
def test_only_a_run_that_succeeded_is_published(gcs, tmp_path, status):
    _, bucket = gcs
    with pytest.raises(PublishError, match=f"status: {status}"):
        publish_run(fake_run(tmp_path, status=status), f"gs://{bucket.name}", "seed-004")
    assert list(bucket.list_blobs()) == []


def test_publishing_again_is_a_no_op_and_different_files_are_refused(gcs, proxy, tmp_path):
    _, bucket = gcs
    run = fake_run(tmp_path)
    uri = publish_run(run, f"gs://{bucket.name}", "seed-004")
    before = len(proxy.uploads())
    assert publish_run(run, f"gs://{bucket.name}", "seed-004") == uri
    assert len(proxy.uploads()) == before
    write(run / "report" / "report.html", "<html>changed</html>")
    with pytest.raises(PublishError, match="already published with different files"):
        publish_run(run, f"gs://{bucket.name}", "seed-004")


def test_artifacts_ls_get_open_read_the_same_run_from_gcs_and_from_the_local_folder(gcs, tmp_path, monkeypatch):
    _, bucket = gcs
    run = fake_run(tmp_path / "runs")
    uri = publish_run(run, f"gs://{bucket.name}/team", "seed-004")
    cli = CliRunner()

    listings = [
        cli.invoke(artifacts, args)
        for args in (
            ["ls", uri],
            ["--root", f"gs://{bucket.name}/team", "ls", RUN_ID],
            ["--root", str(tmp_path / "runs"), "ls", RUN_ID],
            ["ls", str(run)],
        )
    ]
    for result in listings:
        assert result.exit_code == 0, result.output
        assert "best: adam (test accuracy 0.9800)" in result.output
    files = [line.split()[-1] for line in listings[0].output.splitlines()[2:-1]]
    assert files == sorted(run_layout(run))
    assert all(r.output.splitlines()[1:] == listings[0].output.splitlines()[1:] for r in listings[1:])

    result = cli.invoke(artifacts, ["get", uri, "report", "models/adam.s0", "--to", str(tmp_path / "got")])
    assert result.exit_code == 0, result.output
    got = tmp_path / "got" / RUN_ID
    fetched = {p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()}
    assert fetched == {n for n in run_layout(run) if n.startswith(("report/", "models/adam.s0/"))}
    local = run_layout(run)["models/adam.s0/history.json"]
    assert (got / "models/adam.s0/history.json").read_bytes() == local.read_bytes()

    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "cache"))
    result = cli.invoke(artifacts, ["open", uri])
    assert result.exit_code == 0, result.output
    html = Path(result.output.strip())
    assert opened == [html.as_uri()] and html.read_text() == "<html>adam wins</html>"


def test_get_refuses_an_object_that_no_longer_matches_its_published_checksum(gcs, tmp_path):
    _, bucket = gcs
    uri = publish_run(fake_run(tmp_path), f"gs://{bucket.name}", "seed-004")
    bucket.blob(f"seed-004/{RUN_ID}/report/report.html").upload_from_string("<html>tampered</html>")
    result = CliRunner().invoke(artifacts, ["get", uri, "report", "--to", str(tmp_path / "got")])
    assert result.exit_code != 0 and "differs from the published" in result.output


@pytest.mark.parametrize(
    "rows, best",
    [
        (
            [
                {"optimizer": "adam lr=0.01", "test_accuracy": 0.99, "best": False},
                {"optimizer": "adam", "test_accuracy": 0.98, "best": True},
            ],
            ("adam", 0.98),
        ),
        ([{"optimizer": "adadelta", "test_accuracy": None, "best": False}], None),
    ],
)
def test_the_best_is_the_reports_verdict(rows, best):
    assert best_variant(rows) == best


def test_an_unknown_run_id_is_named(gcs, tmp_path):
    _, bucket = gcs
    result = CliRunner().invoke(artifacts, ["--root", f"gs://{bucket.name}/team", "ls", "20990101-000000-abcdef"])
    assert result.exit_code != 0 and "expected one complete run 20990101-000000-abcdef" in result.output
    result = CliRunner().invoke(artifacts, ["--root", str(tmp_path), "ls", "nope"])
    assert result.exit_code != 0 and "no run nope" in result.output


# --- A shared bucket is untrusted: hostile manifests, objects and servers (docs/threat-model.md) ---


def publish_hostile(bucket: storage.Bucket, files: object, objects: dict[str, bytes] | None = None) -> str:
    """A "published" run whose _COMPLETE someone else wrote: `files` as its manifest, `objects` as its objects."""
    prefix = f"runs/s/{RUN_ID}"
    for name, data in (objects or {}).items():
        bucket.blob(f"{prefix}/{name}").upload_from_string(data)
    bucket.blob(f"{prefix}/{MARKER}").upload_from_string(json.dumps({"files": files}))
    return f"gs://{bucket.name}/{prefix}"


def entry(data: bytes) -> dict:
    import base64

    import google_crc32c

    return {"size": len(data), "crc32c": base64.b64encode(google_crc32c.Checksum(data).digest()).decode()}


def everything_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize(
    "name",
    ["{abs}/escaped.txt", "../../escaped.txt", "report/../../escaped.txt", "report//x", "report\\..\\x", ".hidden"],
)
def test_get_refuses_a_manifest_name_that_leaves_the_destination(gcs, tmp_path, name):
    _, bucket = gcs
    name = name.format(abs=tmp_path / "abs")
    good = b"<html>fine</html>"
    uri = publish_hostile(
        bucket, {"report/report.html": entry(good), name: entry(b"evil")}, {"report/report.html": good}
    )
    dl = tmp_path / "a" / "b" / "dl"
    result = CliRunner().invoke(artifacts, ["get", uri, "--to", str(dl)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "is not a relative file name" in result.output and repr(name) in result.output
    assert everything_under(tmp_path) <= {"a", "a/b"}, "nothing written anywhere, the listed good file neither"


def test_get_refuses_a_symbolic_link_out_of_the_destination(gcs, tmp_path):
    _, bucket = gcs
    data = b"x"
    uri = publish_hostile(bucket, {"report/x.txt": entry(data)}, {"report/x.txt": data})
    (tmp_path / "dl" / RUN_ID).mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "dl" / RUN_ID / "report").symlink_to(tmp_path / "outside")
    result = CliRunner().invoke(artifacts, ["get", uri, "--to", str(tmp_path / "dl")])
    assert result.exit_code == 1 and "leads outside" in result.output, result.output
    assert list((tmp_path / "outside").iterdir()) == []


def test_an_object_the_manifest_names_but_the_bucket_lacks_ends_at_once_and_leaves_nothing(gcs, tmp_path):
    _, bucket = gcs
    present = b"<html>fine</html>"
    uri = publish_hostile(
        bucket,
        {"report/report.html": entry(present), "report/gone.png": entry(b"png")},
        {"report/report.html": present},
    )
    result = CliRunner().invoke(artifacts, ["get", uri, "--to", str(tmp_path / "dl")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"{uri}/report/gone.png: no such object" in result.output
    assert everything_under(tmp_path / "dl") == set(), "no half download that looks like the run"


@pytest.mark.parametrize(
    "files, error",
    [
        ({}, "not a manifest"),
        (["report/x"], "not a manifest"),
        ({"report/x": {"size": -1, "crc32c": "AAAAAA=="}}, "no valid size"),
        ({"report/x": {"size": 1e12, "crc32c": "AAAAAA=="}}, "no valid size"),
        ({"report/x": {"size": 3, "crc32c": "<script>"}}, "not the base64 of 4 bytes"),
    ],
)
def test_a_malformed_manifest_is_refused_with_its_fault(gcs, files, error):
    _, bucket = gcs
    result = CliRunner().invoke(artifacts, ["ls", publish_hostile(bucket, files)])
    assert result.exit_code == 1 and error in result.output and "Traceback" not in result.output, result.output


def test_a_manifest_that_is_not_json_or_too_large_is_refused(gcs, monkeypatch):
    _, bucket = gcs
    uri = publish_hostile(bucket, {})
    bucket.blob(f"runs/s/{RUN_ID}/{MARKER}").upload_from_string(b"{not json")
    result = CliRunner().invoke(artifacts, ["ls", uri])
    assert result.exit_code == 1 and f"{uri}/{MARKER}: not JSON" in result.output, result.output
    monkeypatch.setattr("optbench.storage.MAX_MANIFEST_BYTES", 4)
    result = CliRunner().invoke(artifacts, ["ls", uri])
    assert result.exit_code == 1 and "more than the 4 such a file may have" in result.output, result.output


def test_an_object_larger_than_its_manifest_says_is_not_read_past_that_size(gcs, proxy, tmp_path):
    _, bucket = gcs
    small, big = b"<html>fine</html>", b"<html>" + b"x" * 500_000
    uri = publish_hostile(bucket, {"report/report.html": entry(small)}, {"report/report.html": big})
    result = CliRunner().invoke(artifacts, ["get", uri, "--to", str(tmp_path / "dl")])
    assert result.exit_code == 1 and "differs from the published" in result.output, result.output
    assert everything_under(tmp_path / "dl") == set()


@pytest.mark.parametrize("ref", ["../escape", "a/../../b", "<b>run</b>", "gs://bkt/runs/s/..", "gs://BKT/x"])
def test_a_run_id_or_uri_that_is_not_plain_is_refused_before_anything_is_read(gcs, tmp_path, ref):
    result = CliRunner().invoke(artifacts, ["--root", str(tmp_path), "get", ref, "--to", str(tmp_path / "dl")])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert any(m in result.output for m in ("not a plain name", "not a relative file name", "not a gs://")), result
    assert not (tmp_path / "dl").exists()


def test_a_storage_server_that_never_answers_ends_within_the_stated_budget(monkeypatch):
    """A server that accepts the connection and says nothing: each request times out, retries stop at the deadline."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setattr("optbench.storage.REQUEST_TIMEOUT", 0.5)
    try:
        with pytest.raises(ArtifactsError, match=f"gs://bkt/runs/s/{RUN_ID}/{MARKER}: gave up after retrying"):
            GcsRun.open(f"gs://bkt/runs/s/{RUN_ID}", retry=FAST_RETRY)
    finally:
        listener.close()


def test_publish_refuses_a_symbolic_link_in_the_run_folder(gcs, tmp_path):
    _, bucket = gcs
    run = fake_run(tmp_path)
    (tmp_path / "secret").write_text("not the run's")
    (run / "report" / "notes.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(ArtifactsError, match="a symbolic link in a run folder"):
        publish_run(run, f"gs://{bucket.name}", "seed-004")
    assert list(bucket.list_blobs()) == []


def test_without_google_cloud_credentials_a_gs_root_is_refused_in_one_line(tmp_path, monkeypatch):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login either
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # nor a machine's own account
    for command, args in (
        (artifacts, ["ls", "gs://some-bucket/runs/x"]),
        (runs, ["--prune", "--root", "gs://some-bucket/runs"]),
    ):
        result = CliRunner().invoke(command, args)
        assert result.exit_code != 0 and result.output.startswith("Error: Google Cloud: "), result.output
        assert "credentials were not found" in result.output and len(result.output.splitlines()) == 1
