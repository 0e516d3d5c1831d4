"""Alerts: a real local HTTP server receives them; a server that fails is retried a bounded number of times; the
URL, a secret, shows in no status and no log line; a failed pipeline notifies from its exit task."""

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import free_port

from optbench.components.shared import notify
from optbench.components.shared.untrusted import UntrustedInput, webhook_url

SECRET_PATH = "/hooks/T000/SECRET123"


class Hook:
    """A webhook on 127.0.0.1 that answers each POST with the next of `answers` (the last one repeats) and keeps
    what it received."""

    def __init__(self, answers: list[int]):
        self.answers = answers
        self.received: list[dict] = []  # {"path", "content_type", "body"}
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(
                    {"path": self.path, "content_type": self.headers["Content-Type"], "body": json.loads(body)}
                )
                code = hook.answers[min(len(hook.received), len(hook.answers)) - 1]
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"no_service")

            def log_message(self, *args) -> None:  # the server's own access log would print the secret path
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def messages(self) -> list[dict]:
        return [r["body"] for r in self.received]


@pytest.fixture
def hook() -> Iterator[Callable[[list[int]], Hook]]:
    """A factory of started Hooks, shut down after the test."""
    started = []

    def start(answers: list[int]) -> Hook:
        h = Hook(answers)
        h.thread.start()
        started.append(h)
        return h

    yield start
    for h in started:
        h.server.shutdown()
        h.server.server_close()


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    """No back-off between attempts: the tests count attempts, not seconds."""
    monkeypatch.setattr(notify, "BACKOFF_SECONDS", 0.0)
    monkeypatch.delenv(notify.ENV, raising=False)


def assert_no_secret(status: str, caplog) -> None:
    assert "SECRET123" not in status and "/hooks/" not in status
    for record in caplog.records:
        assert "SECRET123" not in record.getMessage(), record.getMessage()


def test_a_changed_run_reaches_the_webhook_as_slack_text_with_its_fields(hook, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    server = hook([200])
    monkeypatch.setenv(notify.ENV, server.url)
    changes = [f"adam-{i}: accuracy 0.9{i} < 0.95" for i in range(12)]
    body = notify.message("changed", "smoke", "run-7", verdict="Adam wins.", changes=changes, report="gs://b/r")

    status = notify.post(body)

    assert status == "sent (HTTP 200)"
    (got,) = server.received
    assert got["path"] == SECRET_PATH and got["content_type"] == "application/json"
    text = got["body"]["text"]
    assert "smoke" in text and "run-7" in text and "Adam wins." in text and "gs://b/r" in text
    assert "accuracy 0.90 &lt; 0.95" in text, "mrkdwn's markup characters are escaped"
    assert "adam-9" in text and "adam-10" not in text and "2 more" in text, "at most 10 change lines"
    assert set(got["body"]) == {"text", "metadata"}, "no top-level key Slack does not document"
    assert got["body"]["metadata"]["event_type"] == "optbench_run_changed"
    fields = got["body"]["metadata"]["event_payload"]
    assert fields["suite"] == "smoke" and fields["run"] == "run-7" and fields["event"] == "changed"
    assert fields["changes"].splitlines()[0] == changes[0] and fields["changes_total"] == 12
    assert fields["report"] == "gs://b/r"
    assert_no_secret(status, caplog)


def test_message_keeps_a_long_verdict_and_error_short():
    body = notify.message("failed", "s", "r", verdict="v" * 5000, error="e" * 5000)
    assert len(body["metadata"]["event_payload"]["verdict"]) == notify.TEXT_CHARS
    assert len(body["text"]) < 2 * notify.TEXT_CHARS + 200
    with pytest.raises(ValueError, match="'done' is not one of finished, changed, failed"):
        notify.message("done", "s", "r")


def test_a_server_error_is_retried_until_it_answers(hook, caplog):
    caplog.set_level(logging.DEBUG)
    server = hook([500, 503, 200])
    status = notify.post(notify.message("finished", "s", "r"), url=server.url)
    assert status == "sent (HTTP 200) after 3 attempts"
    assert len(server.received) == 3
    assert_no_secret(status, caplog)


def test_a_server_that_keeps_failing_costs_a_bounded_number_of_attempts(hook, caplog):
    caplog.set_level(logging.DEBUG)
    server = hook([500])
    status = notify.post(notify.message("finished", "s", "r"), url=server.url, retries=2)
    assert status == "failed after 3 attempts: HTTP 500 (no_service)"
    assert len(server.received) == 3
    assert any(r.levelno == logging.WARNING and status in r.getMessage() for r in caplog.records)
    assert_no_secret(status, caplog)


def test_a_refusal_is_not_retried(hook):
    server = hook([404])
    assert notify.post(notify.message("finished", "s", "r"), url=server.url) == "failed: HTTP 404 (no_service)"
    assert len(server.received) == 1


def test_a_closed_port_fails_without_raising_or_showing_the_url(caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = f"http://127.0.0.1:{port}{SECRET_PATH}?token=SECRET123"
    status = notify.post(notify.message("failed", "s", "r", error="boom"), url=url, retries=1)
    assert status == "failed after 2 attempts: connection refused"
    assert_no_secret(status, caplog)
    assert not any("token=" in r.getMessage() for r in caplog.records)


def test_a_server_that_never_answers_costs_the_timeout_per_attempt(caplog):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections wait in its backlog, never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}{SECRET_PATH}"
        status = notify.post(notify.message("finished", "s", "r"), url=url, retries=1, timeout=0.2)
    assert status == "failed after 2 attempts: no answer within 0.2 s"
    assert_no_secret(status, caplog)


def test_without_a_url_nothing_is_sent(hook):
    server = hook([200])
    assert notify.post(notify.message("finished", "s", "r")) == ""
    assert notify.post(notify.message("finished", "s", "r"), url="") == ""
    assert server.received == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/hooks/T000/SECRET123", "must start with https:// or http://"),
        ("https:///hooks/T000/SECRET123", "has no host"),
        ("https://user:SECRET123@example.com/hooks", "must not carry credentials"),
        ("https://example.com/hooks/T000/SECRET123 x", "whitespace or a control character"),
        ("https://example.com/hooks/\x1bSECRET123", "whitespace or a control character"),
        ("https://example.com:SECRET123/hooks", "malformed"),
        ("https://example.com/" + "SECRET123" * 300, "longer than 2048 characters"),
    ],
)
def test_a_bad_url_is_refused_with_a_reason_that_does_not_repeat_it(url, why, monkeypatch, caplog):
    with pytest.raises(UntrustedInput, match=why) as refused:
        webhook_url(url)
    assert "SECRET123" not in str(refused.value) and str(refused.value).startswith("--notify: ")
    monkeypatch.setenv(notify.ENV, url)
    status = notify.post(notify.message("finished", "s", "r"))
    assert status.startswith(f"failed: {notify.ENV}: ") and why in status
    assert_no_secret(status, caplog)


def test_a_good_url_is_kept_as_given():
    url = "https://hooks.slack.com/services/T000/B000/XXXX"
    assert webhook_url(url) == url and webhook_url("") == ""


def run_pipeline_with_exit_handler(body_fails: bool, tmp_path):
    """A pipeline of one task, failing or not, guarded by the notify step's exit task, run by kfp.local; returns
    kfp.local's record of the run (whose output is the exit task's status string when the run succeeded)."""
    from kfp import dsl, local

    from optbench.components.image import component
    from optbench.components.notify.component import notify

    @component
    def body(fail: bool):
        if fail:
            raise RuntimeError("the body failed on purpose")

    @dsl.pipeline
    def guarded(suite: str, run_name: str, fail: bool) -> str:
        exit_task = notify(suite=suite, run_name=run_name)
        with dsl.ExitHandler(exit_task=exit_task):
            body(fail=fail)
        return exit_task.output

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=False
    )
    return guarded(suite="smoke", run_name="run-42", fail=body_fails)


def test_a_failed_pipeline_notifies_from_its_exit_task(hook, monkeypatch, tmp_path):
    server = hook([200])
    monkeypatch.setenv(notify.ENV, server.url)  # the tasks' processes inherit it, as a Secret's env var on a cluster
    run_pipeline_with_exit_handler(True, tmp_path)
    (got,) = server.messages()
    fields = got["metadata"]["event_payload"]
    assert fields["event"] == "failed" and fields["suite"] == "smoke" and fields["run"] == "run-42"
    assert fields["error"] and fields["job"]
    assert "run-42" in got["text"] and "failed" in got["text"]


def test_a_pipeline_that_succeeds_sends_nothing_from_its_exit_task(hook, monkeypatch, tmp_path):
    server = hook([200])
    monkeypatch.setenv(notify.ENV, server.url)
    assert run_pipeline_with_exit_handler(False, tmp_path).output == "", "the exit task ran and sent nothing"
    assert server.received == []
