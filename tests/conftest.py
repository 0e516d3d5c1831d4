"""Shared fixtures: small slices of the genuine MNIST test split (../shared/data/mnist)."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_HOME", str(Path(__file__).resolve().parent.parent / ".cache" / "keras"))

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = Path(os.environ.get("OPTBENCH_SHARED_MNIST", REPO.parent / "shared" / "data" / "mnist"))


@pytest.fixture(scope="session")
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 genuine MNIST test digits: (uint8 [N,28,28], uint8 [N])."""
    from optbench.components.ingest.idx import read_split

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.fail(f"genuine MNIST test split not found at {SHARED_MNIST} (set OPTBENCH_SHARED_MNIST)")
    return read_split(SHARED_MNIST, "test")


def make_idx_source(folder: Path, images: np.ndarray, labels: np.ndarray, n_train: int, n_test: int) -> Path:
    """A folder of the four IDX .gz files cut from genuine digits (not the canonical files: no checksum applies)."""
    from optbench.components.ingest.idx import SPLIT_FILES, write_images, write_labels

    folder.mkdir(parents=True, exist_ok=True)
    cuts = {"train": slice(0, n_train), "test": slice(n_train, n_train + n_test)}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        write_images(folder / images_name, images[cuts[split]])
        write_labels(folder / labels_name, labels[cuts[split]])
    return folder


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def cpu_image() -> str:
    """The CPU image, built as `make images` builds it (starting Docker Engine where this may); its name."""
    from optbench.images import build_images, default_ca_bundle

    (built,) = build_images(["cpu"], ca_bundle=default_ca_bundle())
    return built.ref


HOOK_PATH = "/hooks/T000/B000/SECRET7d1e"  # the secret part of a Slack-style webhook URL


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
