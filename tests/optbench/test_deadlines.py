"""Total deadlines: a server that trickles its answer, a byte at a time (which no per-read timeout stops), is cut
off at the call's deadline, with a message that names what was being called, for every remote call: downloads,
the KFP API, storage, the webhook, MLflow. The deadlines are shortened here to a second or two."""

from __future__ import annotations

import re
import time

import pytest
from click.testing import CliRunner
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from helpers import HOOK_PATH, trickling_server

from optbench import kfp_api
from optbench import storage as optbench_storage
from optbench.cli.cluster import runs
from optbench.components.ingest import sources
from optbench.components.report import tracking
from optbench.components.shared import notify

DEADLINE = 1.5
CUT_OFF = "no complete answer within 1.5 s (its total deadline)"


@pytest.fixture
def clock():
    """Asserts that the call under test ended soon after its deadline."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < DEADLINE + 8


@pytest.mark.parametrize("head", [True, False], ids=["trickled-head", "trickled-body"])
def test_a_download_ends_at_its_deadline_and_leaves_nothing(monkeypatch, tmp_path, clock, head):
    monkeypatch.setattr(sources, "DOWNLOAD_DEADLINE_S", DEADLINE)
    with trickling_server(head=head) as url, pytest.raises(sources.DataError) as refused:
        sources._download(f"{url}/t10k.gz", tmp_path / "t10k.gz")
    assert str(refused.value).startswith(f"{url}/t10k.gz: download: {CUT_OFF}")
    assert list(tmp_path.iterdir()) == []  # no half-written file


def test_the_webhook_is_given_up_at_its_deadline_and_the_status_keeps_the_url_secret(monkeypatch, clock):
    monkeypatch.setattr(notify, "DEADLINE_SECONDS", DEADLINE)
    with trickling_server() as url:
        status = notify.post({"text": "done"}, url=f"{url}{HOOK_PATH}", retries=2)
    assert status == f"failed: the webhook: {CUT_OFF}; the server is stuck or trickling"  # not retried
    assert HOOK_PATH not in status and "127.0.0.1" not in status


def test_the_kfp_api_is_given_up_at_its_deadline_in_one_line(monkeypatch, clock):
    monkeypatch.setattr(kfp_api, "DEADLINE", DEADLINE)
    with trickling_server() as url:
        result = CliRunner().invoke(runs, ["--live", "--host", url], catch_exceptions=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "the KFP API (GET /apis/" in result.output and CUT_OFF in result.output


def test_storage_is_given_up_at_its_deadline(monkeypatch, clock):
    monkeypatch.setattr(optbench_storage, "CALL_DEADLINE", DEADLINE)
    with trickling_server(head=False) as url:
        client = storage.Client(project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
        with pytest.raises(optbench_storage.ArtifactsError, match=re.escape(f"gs://bucket/runs: {CUT_OFF}")):
            optbench_storage.open_run("r1", "gs://bucket/runs", client=client)


def test_mlflow_is_given_up_at_its_deadline_and_the_report_says_so(monkeypatch, clock):
    monkeypatch.setattr(tracking, "DEADLINE_SECONDS", DEADLINE)
    with trickling_server() as url:
        parent, status = tracking.export_comparison(url, {"suite": "seed-004"}, [], [])
    assert parent is None
    assert status["status"] == f"failed: the MLflow store {url}: {CUT_OFF}; the server is stuck or trickling"
