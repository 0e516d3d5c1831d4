"""Helpers several test modules use (tests/ is on pytest's pythonpath: `from helpers import ...`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from optbench.components.question import suites


def single_trial(optimizer: str, seed: int = 0, batch_size: int = 64, **params: Any) -> dict:
    """One trial outside any suite, expanded as a suite of one would be: the optimizer's defaults plus `params`."""
    suite = suites.validate(
        {
            "optimizers": [{"name": optimizer, **params}],
            "batch_size": batch_size or "full",
            "seeds": [seed],
            "baseline": None,
        },
        source="trial",
    )
    (trial,) = suites.expand(suite)
    return trial


# Beam's multi-process in-process runner: workers are separate processes that share no memory with the driver,
# as a distributed runner's (Dataflow's) do.
MULTI_PROCESS_BEAM_ARGS = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def bucket_files(bucket, prefix: str) -> dict[str, bytes]:
    """name under `prefix` -> content, of every object there."""
    return {b.name[len(prefix) :]: b.download_as_bytes() for b in bucket.list_blobs(prefix=prefix)}


def tensorboard_scalars(log_dir, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one scalar in a folder of event files, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0}).Reload()
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]


# --- Data and servers on this machine ---


def make_idx_source(folder: Path, images: np.ndarray, labels: np.ndarray, n_train: int, n_test: int) -> Path:
    """A folder of the four IDX .gz files cut from genuine digits (not the canonical files: no checksum applies)."""
    from optbench.components.ingest.idx import SPLIT_FILES, write_images, write_labels

    folder.mkdir(parents=True, exist_ok=True)
    cuts = {"train": slice(0, n_train), "test": slice(n_train, n_train + n_test)}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        write_images(folder / images_name, images[cuts[split]])
        write_labels(folder / labels_name, labels[cuts[split]])
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HOOK_PATH = "/hooks/T000/B000/SECRET7d1e"  # the secret part of a Slack-style webhook URL


# --- The console script, as a user runs it ---


OPTBENCH = str(Path(sys.executable).with_name("optbench"))


def optbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [OPTBENCH, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


SECRET = "sentinel-secret-7f3a9c"  # planted in credential variables; must never be written anywhere


def env() -> dict:
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KF_PIPELINES_TOKEN": SECRET,
        "GOOGLE_OAUTH_ACCESS_TOKEN": SECRET,
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }


def run_args(suite: Path, source: Path, output: Path, train_limit: int = 1000) -> list[str]:
    return [
        OPTBENCH,
        "run",
        "--suite",
        str(suite),
        "--train-limit",
        str(train_limit),
        "--data-source",
        str(source),
        "--output",
        str(output),
    ]


def finished_run(args: list[str], output: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """`optbench run ARGS`, which must succeed, and the one run folder it wrote under `output`."""
    result = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = output.iterdir()
    return result, run_dir


# --- Commands invoked in this process, and an image to compile for (the KFP API double's tests) ---


CPU = "europe-docker.pkg.dev/proj/optbench/cpu:0.1.0"


def invoke(command, *args: str):
    result = CliRunner().invoke(command, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# --- Pages opened in Debian's chromium, driven by Playwright ---


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Each <img>: loaded, decodable (decode() rejects what the browser cannot draw), its size and alt text.
IMAGES_JS = """Promise.all([...document.images].map(async i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth,
    decoded: await i.decode().then(() => true, () => false)})))"""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed; the report's browser test needs it: "
            "apt-get update && apt-get install -y chromium"
        )
    return path


def open_in_chromium(page_path: Path, screenshot: Path | None = None) -> dict:
    """Load `page_path` in headless chromium (a fresh, empty profile) and report what a reader would meet."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install playwright==1.65.2")
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            page.on("request", lambda r: requests.append(r.url))
            response = page.goto(page_path.resolve().as_uri(), wait_until="load")
            result = {
                "ok": response is not None and response.ok,
                "images": page.evaluate(IMAGES_JS),
                "title": page.title(),
                "verdict": page.inner_text("p.verdict"),
            }
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        **result,
        "problems": problems,
        "outside_requests": [u for u in requests if not u.startswith(("data:", "file:"))],
    }


# A process that takes the run folder argv[1] and keeps it until it is killed.
HOLD = (
    "import sys, time; from pathlib import Path; from optbench.ownership import owned\n"
    "with owned(Path(sys.argv[1]), 'optbench run --resume'):\n"
    "    print('held', flush=True); time.sleep(600)\n"
)


def hold(folder: Path) -> subprocess.Popen:
    """Another process holding `folder`, once it says so."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@contextmanager
def trickling_server(head: bool = True, every: float = 0.1) -> Iterator[str]:
    """An HTTP server on this machine that answers every request one byte every `every` seconds: its status
    line and headers too (`head`), else a prompt head and a body without end. What a per-read timeout never
    stops. Yields its URL."""

    class Trickle(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
            try:
                if head:
                    for byte in head:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(every)
                else:
                    self.wfile.write(head)
                while True:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(every)
            except OSError:  # the client gave up
                pass

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


RUN_ID = "20261121-082149-62e0d5"  # a run id as `optbench run` makes them


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def fake_run(root: Path, status: str = "succeeded", run_id: str = RUN_ID) -> Path:
    """A run folder shaped like `optbench run`'s: kfp.local's task folders, run.json, pipeline.log, report/."""
    run = root / run_id
    kfp = run / "pipeline" / "optbench-compare-2026-11-21-08-21-49-413970"
    write(run / "run.json", json.dumps({"run_id": run_id, "status": status, "config": {"suite": "seed-004"}}))
    write(run / "pipeline.log", "ingest: ...\n")
    rows = [
        {"optimizer": "adam", "test_accuracy": 0.98, "best": True},
        {"optimizer": "sgd", "test_accuracy": 0.91, "best": False},
    ]
    for folder in (run / "report", kfp / "report" / "report_dir"):
        write(folder / "comparison.json", json.dumps(rows))
        write(folder / "report.html", "<html>adam wins</html>")
        write(folder / "accuracy.png", os.urandom(3000))
    write(kfp / "report" / "executor_output.json", "{}")
    write(kfp / "ingest" / "dataset" / "train" / "part-00000-of-00002.tfrecord", os.urandom(20000))
    write(kfp / "ingest" / "dataset" / "train" / "part-00001-of-00002.tfrecord", os.urandom(20000))
    write(kfp / "ingest" / "dataset" / "stats.json", '{"splits": {}}')
    write(kfp / "init-model" / "initial" / "seed-0" / "model.weights.h5", os.urandom(5000))
    for i, trial in enumerate(("adam.s0", "sgd.s0")):
        model = kfp / f"for-loop-1-iteration-{i}" / "train" / "model"
        write(model / "history.json", json.dumps({"trial": trial, "optimizer": trial.split(".")[0]}))
        write(model / "saved_model" / "saved_model.pb", os.urandom(4000))
        write(model / "saved_model" / "variables" / "variables.data-00000-of-00001", os.urandom(60000))
        write(model.parent / "executor_output.json", "{}")
    write(kfp / "evaluate" / "evaluation" / "summary.json", '{"models": {}}')
    write(kfp / "evaluate" / "evaluation" / "tfma" / "metrics-00000-of-00001.tfrecord", os.urandom(2000))
    return run
