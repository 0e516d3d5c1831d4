"""Alerts: a short JSON message to a Slack-style incoming webhook when a run finishes, flags a change or fails.

The webhook URL is a secret: whoever holds it can post to the channel. So it never travels as a pipeline
parameter (the KFP UI shows those to everyone that sees the run); tasks read it from the environment
variable `ENV` (kfp.local's subprocess tasks inherit this process's environment; on a cluster it comes from
a Kubernetes Secret), and no status string or log line written here holds it or a part of it.

The message has Slack's `text` (mrkdwn, what people read) and `metadata` (what programs read: suite, run,
event, verdict, changes, report, error, job). Slack documents `text`, `blocks` and `attachments` for
incoming webhooks; Slack's own webhook client (@slack/webhook, IncomingWebhookSendArguments) also sends
`metadata` ({event_type, event_payload}), Slack's place for machine-readable fields that people do not see.
We found no statement that Slack ignores other top-level keys, so there are none; and the payload holds
only strings and a number, the value types Slack's metadata schema allows everywhere.

Notifying is a convenience, never a reason to fail a run: `post` retries transient failures a bounded
number of times, never raises, and returns a status string for the report and the logs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests

from optbench.components.shared.deadline import DeadlineExceeded, within
from optbench.components.shared.untrusted import UntrustedInput, printable, webhook_url

log = logging.getLogger(__name__)

ENV = "OPTBENCH_NOTIFY_URL"
HEADLINES = {
    "finished": ":white_check_mark: optbench *{suite}*: run `{run}` finished",
    "changed": ":warning: optbench *{suite}*: run `{run}` flags a change",
    "failed": ":x: optbench *{suite}*: run `{run}` failed",
}
TEXT_CHARS = 500  # a verdict or an error: the report has the rest
LINE_CHARS = 200  # one change line
MAX_CHANGES = 10
BACKOFF_SECONDS = 1.0  # before the 2nd attempt; doubled before each next one
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})
DEADLINE_SECONDS = 30.0  # one attempt in all: a webhook that trickles its answer never holds up a finished run
BODY_BYTES = 200  # of a refusal's body, for the status (Slack answers with a short code such as invalid_payload)
# urllib3 logs each request's path (a Slack webhook's token) at DEBUG: those records are dropped while we post.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")


def message(
    event: str,
    suite: str,
    run_id: str,
    verdict: str = "",
    changes: Iterable[str] = (),
    report: str = "",
    error: str = "",
    job: str = "",
) -> dict:
    """The JSON body for `event` ("finished", "changed" or "failed"): short, since a channel is read at a
    glance (the verdict and the error clipped, at most MAX_CHANGES change lines), with the report's place so
    the rest is one click away. `job` names the KFP run when there is no report (a failed cluster run)."""
    if event not in HEADLINES:
        raise ValueError(f"notify event {event!r} is not one of {', '.join(HEADLINES)}")
    changes = [_clip(" ".join(line.split()), LINE_CHARS) for line in changes]
    shown = changes[:MAX_CHANGES]
    if len(changes) > MAX_CHANGES:
        shown.append(f"… and {len(changes) - MAX_CHANGES} more in the report")
    fields: dict[str, Any] = {
        "suite": suite,
        "run": run_id,
        "event": event,
        "verdict": _clip(verdict, TEXT_CHARS),
        "changes": "\n".join(shown),
        "changes_total": len(changes),
        "report": report,
        "error": _clip(error, TEXT_CHARS),
        "job": job,
    }
    lines = [HEADLINES[event].format(suite=_mrkdwn(suite), run=_mrkdwn(run_id))]
    lines += [_mrkdwn(fields["verdict"])] if verdict else []
    lines += [f"Error: {_mrkdwn(fields['error'])}"] if error else []
    lines += [f"• {_mrkdwn(line)}" for line in shown]
    lines += [f"Report: {_mrkdwn(report)}"] if report else []
    lines += [f"KFP run: {_mrkdwn(job)}"] if job else []
    return {"text": "\n".join(lines), "metadata": {"event_type": f"optbench_run_{event}", "event_payload": fields}}


def post(message: dict, url: str | None = None, retries: int = 2, timeout: float = 10.0) -> str:
    """POST `message` as JSON to `url` (by default the URL in `ENV`); returns what happened, without the URL.

    "" when no URL is configured (nothing is sent), "sent (HTTP 200)", or "failed...: why". Each attempt has
    `timeout` for each wait on the server and DEADLINE_SECONDS in all. Connection
    errors, timeouts, 429 and 5xx are retried `retries` times after 1, 2, 4... seconds; any other answer is
    final. A redirect is a failure: following it would re-send the message as a GET or to another host.
    Retry-After is not obeyed: a server could make a finished run wait for hours.
    """
    what = "the webhook URL" if url is not None else ENV
    url = os.environ.get(ENV, "") if url is None else url
    try:
        url = webhook_url(url, what)
    except UntrustedInput as e:
        return _outcome(f"failed: {e}")
    if not url:
        return ""
    secrets = _secret_parts(url)
    attempts = max(retries, 0) + 1
    with _quiet_urllib3(secrets):
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 2))
            try:
                status, said = within(DEADLINE_SECONDS, "the webhook", lambda: _send(url, message, timeout, secrets))
                if 200 <= status < 300:
                    after = f" after {attempt} attempts" if attempt > 1 else ""
                    return _outcome(f"sent (HTTP {status}){after}")
                why = f"HTTP {status}{said}"
                transient = status in RETRIED_STATUS
            except DeadlineExceeded as e:  # a server that trickles would trickle again
                why, transient = str(e), False
            except Exception as e:  # noqa: BLE001 - a failure to notify is reported, never raised
                why = _redact(_reason(e, timeout), secrets)
                # a certificate that fails now fails on the next try too
                transient = isinstance(e, (requests.ConnectionError, requests.Timeout)) and not isinstance(
                    e, requests.exceptions.SSLError
                )
            if not transient:
                break
            if attempt < attempts:
                log.info("notify: attempt %d of %d failed (%s); retrying", attempt, attempts, why)
    return _outcome(f"failed after {attempt} attempts: {why}" if attempt > 1 else f"failed: {why}")


def _send(url: str, message: dict, timeout: float, secrets: list[str]) -> tuple[int, str]:
    """One POST: (the status code, the start of a refusal's body)."""
    with requests.post(url, json=message, timeout=timeout, allow_redirects=False, stream=True) as r:
        return r.status_code, "" if 200 <= r.status_code < 300 else _body(r, secrets)


def _outcome(status: str) -> str:
    (log.info if status.startswith("sent") else log.warning)("notify: %s", status)
    return status


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> str:
    """`text` with the three characters Slack's mrkdwn reads as markup escaped, as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _secret_parts(url: str) -> list[str]:
    """What of `url` must not be shown: all of it, its host and port, and its path and query (a Slack
    webhook's token is in the path; other services put theirs in the query)."""
    parts = urlsplit(url)
    shown = [url, parts.netloc, parts.query, parts.path + (f"?{parts.query}" if parts.query else "")]
    return sorted({p for p in shown if p not in ("", "/")}, key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<webhook>")
    return text


def _reason(e: Exception, timeout: float) -> str:
    """Why a request failed, in a few words: the operating system's reason where there is one (requests'
    own messages repeat the URL and a repr of urllib3's connection objects)."""
    if isinstance(e, requests.Timeout):
        return f"no answer within {timeout:g} s"
    seen: set[int] = set()
    stack: list[BaseException] = [e]
    while stack:
        cause = stack.pop()
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        stack += [c for c in (cause.__cause__, cause.__context__, getattr(cause, "reason", None)) if c is not None]
        stack += [a for a in cause.args if isinstance(a, BaseException)]
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:LINE_CHARS]


def _body(response: requests.Response, secrets: list[str]) -> str:
    """The start of a refusal's body, read no further than BODY_BYTES, as one printable line (or '')."""
    try:
        data = next(response.iter_content(BODY_BYTES), b"")
    except Exception:  # noqa: BLE001 - the status code says enough
        return ""
    text = " ".join(data.decode("utf-8", "replace").split())
    return f" ({printable(_redact(text, secrets))})" if text else ""


class _DropSecret(logging.Filter):
    """Drops the records that mention the webhook: urllib3 logs each request's host and path at DEBUG."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(secret in text for secret in self.secrets)


@contextmanager
def _quiet_urllib3(secrets: list[str]) -> Iterator[None]:
    """urllib3's records that mention the webhook dropped, for the time we post."""
    dropper = _DropSecret(secrets)
    loggers = [logging.getLogger(name) for name in URLLIB3_LOGGERS]
    for logger in loggers:
        logger.addFilter(dropper)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(dropper)
