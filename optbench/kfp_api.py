"""The Kubeflow Pipelines API as optbench uses it: submit, follow, schedule and list runs.

A thin layer over `kfp.Client` (which speaks KFP's v2beta1 REST API). It exists
to keep our policy in one place - every run and schedule carries its suite's
parameters explicitly, a recurring comparison never overlaps itself nor
back-fills missed days - and to reduce the API's objects to the few fields the
CLI prints.

The API is outside input like any other: every request is bounded (TIMEOUT to connect and
to answer, at most RETRIES more tries), every answer must be a JSON object, the ids and
states we act on are checked and the names we print are escaped; whatever goes wrong
becomes one ApiError naming the endpoint and the kfp.Client call.
"""

from __future__ import annotations

import functools
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from optbench.components.shared.deadline import within
from optbench.components.shared.untrusted import UntrustedInput, plain_name, printable

if TYPE_CHECKING:  # kfp takes most of a second to import; every optbench command would pay it
    import kfp
    from kfp_server_api import ApiException
    from urllib3.exceptions import HTTPError

ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"  # the variable kfp.Client itself reads
# KFP v2beta1's RuntimeState: a run or task state outside it is refused, not shown nor waited on.
RUN_STATES = frozenset(
    {
        "RUNTIME_STATE_UNSPECIFIED",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "SKIPPED",
        "FAILED",
        "CANCELING",
        "CANCELED",
        "PAUSED",
    }
)
FINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
# kfp.Client sets no timeout: urllib3 would wait forever for an API that accepted the connection and never answers.
TIMEOUT = 30.0  # seconds to connect to the API, then seconds for it to answer one request
DEADLINE = 120.0  # seconds one request may take in all, its retries included: an API that trickles is given up
# A request is tried again at most RETRIES times, and only when it cannot have been applied: the connection
# failed, or a gateway (IAP, a port-forward) answered 502/503/504 to an idempotent method (never a POST); a
# request that was sent and not answered is not retried. So one call costs at most TIMEOUT once connected, and
# (1 + RETRIES) x TIMEOUT plus 1 s of back-off when nothing accepts the connection.
RETRIES = 2
RETRY_STATUSES = (502, 503, 504)
BACKOFF = 0.5  # urllib3 retries at once, then after 2 x BACKOFF, 4 x BACKOFF, ... seconds
EXCERPT = 200  # characters of an answer quoted in an error: enough to recognise it, not a whole HTML page
# A recurring comparison must never run twice at once (it would compete for the GPU pool it measures
# on) nor, after a pause, replay every missed slot: one run per slot, the latest only.
MAX_CONCURRENCY = 1
NO_CATCHUP = True


class ApiError(RuntimeError):
    """The KFP API refused or could not be reached; the message says which call and why."""


def check_cron(cron: str) -> str:
    """`cron` if it has KFP's six fields; a five-field crontab line would be misread, minutes as seconds."""
    fields = cron.split()
    if len(fields) != 6:
        raise ValueError(
            f"KFP cron has six fields (second minute hour day-of-month month day-of-week), "
            f"e.g. '0 0 3 * * *' for 03:00 every day; got {len(fields)} in {cron!r}"
        )
    return " ".join(fields)


def _excerpt(text: str | bytes | None) -> str:
    """The start of `text` on one line, to quote in an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    line = " ".join((text or "").split())
    return line if len(line) <= EXCERPT else line[:EXCERPT] + "..."


def _known(value: object, known: frozenset[str], what: str) -> str:
    """`value` if it is one of `known`: an unknown state is neither final nor safe to print."""
    if not isinstance(value, str) or value not in known:
        raise UntrustedInput(f"{what} {_excerpt(repr(value))} is not one of {', '.join(sorted(known))}")
    return value


def _json_object(data: bytes, content_type: str | None) -> None:
    """Refuse an answer that is not a JSON object (every call we make answers one, {} when it has nothing to
    say): kfp's deserializer would turn malformed JSON, a list or an HTML login page into a model of Nones."""
    try:
        value = json.loads(data)
    except ValueError as e:
        raise UntrustedInput(f"a body that is not JSON ({e}; Content-Type {content_type}): {_excerpt(data)!r}") from e
    if not isinstance(value, dict):
        raise UntrustedInput(f"JSON {type(value).__name__}, not an object: {_excerpt(data)!r}")


def _no_answer(e: HTTPError, call: str) -> str:
    """What went wrong on the wire, for an ApiError: a timeout says which one and the budget spent."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    reason = getattr(e, "reason", None) or e  # urllib3 wraps what the last try met in a MaxRetryError
    if isinstance(reason, ReadTimeoutError):
        return f"did not answer {call} within {TIMEOUT:g} s"
    if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
        return f"did not accept a connection for {call} within {TIMEOUT:g} s, {1 + RETRIES} tries"
    return f"could not be reached for {call} ({1 + RETRIES} tries): {reason.__cause__ or reason}"


def _refusal(e: ApiException, call: str) -> str:
    """An error status, with the start of its body; status 0 is kfp_server_api's own (TLS, an unparsable value)."""
    if not e.status:
        return f"could not be used for {call}: {_excerpt(e.reason)}"
    return f"answered {call} with {e.status} {_excerpt(e.reason)}: {_excerpt(e.body)}"


@contextmanager
def _calling(endpoint: str, call: str) -> Iterator[None]:
    """Run kfp.Client's `call` and check its answer inside; whatever goes wrong becomes one ApiError naming the
    endpoint and the call, never a traceback. kfp prints links holding ids before we could check them: they
    come out escaped, after the call succeeded."""
    from kfp_server_api import ApiException
    from urllib3.exceptions import HTTPError

    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            yield
    except HTTPError as e:
        raise ApiError(printable(f"the KFP API at {endpoint} {_no_answer(e, call)}")) from e
    except ApiException as e:
        raise ApiError(printable(f"the KFP API at {endpoint} {_refusal(e, call)}")) from e
    except (ValueError, TypeError, AttributeError) as e:  # our checks, and kfp's deserializer meeting garbage
        raise ApiError(
            printable(f"the KFP API at {endpoint} answered {call} with an unusable response: {_excerpt(str(e))}")
        ) from e
    for line in printed.getvalue().splitlines():
        print(printable(line), flush=True)  # before what the caller prints next, on stderr too


@functools.cache
def _bounded_client() -> type[kfp.Client]:
    """kfp.Client with TIMEOUT and RETRIES on every request, and every answer checked to be a JSON object.

    Defined on first use: kfp is imported only by the commands that talk to the API.
    """
    import kfp
    import urllib3
    from kfp_server_api.rest import RESTClientObject

    retry = urllib3.Retry(
        total=RETRIES,
        connect=RETRIES,
        read=0,
        status=RETRIES,
        other=0,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF,
        respect_retry_after_header=False,  # a Retry-After of a day would hang the command for a day
        raise_on_status=False,  # after the last retry the error answer itself, with its body, becomes the error
    )

    class BoundedRest(RESTClientObject):
        def request(self, method, url, *args, _preload_content=True, _request_timeout=None, **kwargs):
            # kfp passes no timeout, so the generated client passes urllib3 timeout=None: wait forever. Each wait
            # on the server is bounded by TIMEOUT, the whole request (its retries too) by DEADLINE.
            send = super().request
            response = within(
                DEADLINE,
                f"the KFP API ({method} {urlsplit(url).path})",
                lambda: send(
                    method,
                    url,
                    *args,
                    _preload_content=_preload_content,
                    _request_timeout=_request_timeout or (TIMEOUT, TIMEOUT),
                    **kwargs,
                ),
            )
            if _preload_content:
                _json_object(response.data, response.getheader("Content-Type"))
            return response

    class BoundedClient(kfp.Client):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._bound()  # also when __init__ asked no healthz (kfp's context file named a namespace)

        def _load_config(self, *args):
            config = super()._load_config(*args)
            config.retries = retry
            return config

        def _bound(self) -> None:
            api_client = self._healthz_api.api_client  # one ApiClient behind all of kfp.Client's services
            if not isinstance(api_client.rest_client, BoundedRest):
                api_client.rest_client = BoundedRest(api_client.configuration)

        def get_kfp_healthz(self, sleep_duration: int = 0):
            """One bounded, checked request. kfp.Client's own runs from __init__, before anything else could
            bound it, and tries five times, sleep_duration (5 s) apart, logging a traceback each time."""
            self._bound()
            return self._healthz_api.healthz_service_get_healthz()

    return BoundedClient


@dataclass(frozen=True)
class Connection:
    """Where the KFP API is and how to authenticate, in kfp.Client's terms.

    `token` is a bearer token (e.g. `gcloud auth print-access-token`); `iap_client_id`
    (with `other_client_id`/`other_client_secret` for a desktop login) is for an
    endpoint behind Identity-Aware Proxy. With neither, requests go unauthenticated,
    as through `kubectl port-forward`.
    """

    host: str | None = None
    token: str | None = None
    iap_client_id: str | None = None
    other_client_id: str | None = None
    other_client_secret: str | None = None
    namespace: str | None = None
    ssl_ca_cert: str | None = None

    def endpoint(self) -> str:
        host = self.host or os.environ.get(ENDPOINT_ENV)
        if not host:
            raise ApiError(
                f"no KFP endpoint: pass --host or set {ENDPOINT_ENV} (e.g. http://localhost:8080 "
                "after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)"
            )
        return host

    def pipelines(self) -> Pipelines:
        """optbench's calls through a bounded kfp.Client; constructing one asks the API's healthz (multi-user?)."""
        host = self.endpoint()
        with warnings.catch_warnings(), _calling(host, "get_kfp_healthz"):
            warnings.simplefilter("ignore", FutureWarning)  # kfp warns on every construction that it needs v2
            client = _bounded_client()(
                host=host,
                existing_token=self.token,
                client_id=self.iap_client_id,
                other_client_id=self.other_client_id,
                other_client_secret=self.other_client_secret,
                namespace=self.namespace or "kubeflow",
                ssl_ca_cert=self.ssl_ca_cert,
            )
        return Pipelines(client, host)


def _time(value: datetime | None) -> datetime | None:
    """The API reports 'not yet' as the Unix epoch; None is clearer."""
    if value is None or value.year <= 1970:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    name: str
    state: str
    created_at: datetime | None
    finished_at: datetime | None
    pipeline_root: str | None
    error: str | None
    tasks: tuple[tuple[str, str], ...] = ()  # (display name, state) of each task, in the API's order

    @classmethod
    def of(cls, run) -> RunSummary:
        """The run as the API described it: its id and states checked, the text we print escaped.

        `pipeline_root` is left as sent: it is used, not shown, and checked where it is used.
        """
        details = run.run_details.task_details if run.run_details and run.run_details.task_details else []
        return cls(
            run_id=plain_name(run.run_id, "run id"),
            name=printable(run.display_name or ""),
            state=_known(run.state or "RUNTIME_STATE_UNSPECIFIED", RUN_STATES, "run state"),
            created_at=_time(run.created_at),
            finished_at=_time(run.finished_at),
            pipeline_root=run.runtime_config.pipeline_root if run.runtime_config else None,
            error=printable(run.error.message or "") if run.error else None,
            tasks=tuple(
                (
                    printable(t.display_name or t.task_id or "?"),
                    _known(t.state or "RUNTIME_STATE_UNSPECIFIED", RUN_STATES, "task state"),
                )
                for t in details
            ),
        )

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def duration(self, now: datetime | None = None) -> timedelta | None:
        """Wall time so far (running) or in all (finished)."""
        if self.created_at is None:
            return None
        return (self.finished_at or now or datetime.now(UTC)) - self.created_at


@dataclass(frozen=True)
class ScheduleSummary:
    schedule_id: str
    name: str
    cron: str | None
    enabled: bool
    max_concurrency: int
    no_catchup: bool
    created_at: datetime | None

    @classmethod
    def of(cls, job) -> ScheduleSummary:
        """The recurring run as the API described it: its id checked, the text we print escaped."""
        cron = job.trigger.cron_schedule.cron if job.trigger and job.trigger.cron_schedule else None
        return cls(
            schedule_id=plain_name(job.recurring_run_id, "schedule id"),
            name=printable(job.display_name or ""),
            cron=printable(cron) if cron else None,
            enabled=(job.status or job.mode) in ("ENABLED", "ENABLE"),
            max_concurrency=int(job.max_concurrency or 0),
            no_catchup=bool(job.no_catchup),
            created_at=_time(job.created_at),
        )


class Pipelines:
    """optbench's calls to one KFP API server, each bounded and checked (see _calling)."""

    def __init__(self, client: kfp.Client, endpoint: str) -> None:
        self._client = client
        self._endpoint = endpoint

    def _calling(self, call: str) -> AbstractContextManager[None]:
        return _calling(self._endpoint, call)

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, created on first use (kfp.Client looks it up by name first)."""
        with self._calling("create_experiment"):
            return plain_name(self._client.create_experiment(name=name).experiment_id, "experiment id")

    def submit(
        self,
        package: Path,
        arguments: dict,
        *,
        experiment: str,
        run_name: str,
        pipeline_root: str | None = None,
        service_account: str | None = None,
    ) -> RunSummary:
        """Create a run of the compiled `package`; `arguments` are sent too, so the run page lists them."""
        experiment_id = self._experiment_id(experiment)
        with self._calling("run_pipeline"):
            return RunSummary.of(
                self._client.run_pipeline(
                    experiment_id=experiment_id,
                    job_name=run_name,
                    pipeline_package_path=str(package),
                    params=arguments,
                    pipeline_root=pipeline_root,
                    service_account=service_account,
                )
            )

    def run(self, run_id: str) -> RunSummary:
        with self._calling("get_run"):
            return RunSummary.of(self._client.get_run(run_id))

    def follow(
        self,
        run_id: str,
        *,
        poll_seconds: float,
        timeout: float,
        on_change: Callable[[RunSummary, RunSummary | None], None],
    ) -> RunSummary:
        """Poll the run until it ends, calling `on_change(now, before)` whenever its or a task's state moved."""
        deadline = time.monotonic() + timeout
        before: RunSummary | None = None
        while True:
            now = self.run(run_id)
            if before is None or (now.state, now.tasks) != (before.state, before.tasks):
                on_change(now, before)
            if now.done:
                return now
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {now.state} after {timeout:.0f}s")
            before = now
            time.sleep(poll_seconds)

    def schedule(
        self,
        package: Path,
        arguments: dict,
        *,
        cron: str,
        experiment: str,
        name: str,
        pipeline_root: str | None = None,
        service_account: str | None = None,
    ) -> ScheduleSummary:
        """A recurring run of `package` on a six-field cron, one at a time and without catch-up."""
        cron = check_cron(cron)
        experiment_id = self._experiment_id(experiment)
        with self._calling("create_recurring_run"):
            return ScheduleSummary.of(
                self._client.create_recurring_run(
                    experiment_id=experiment_id,
                    job_name=name,
                    cron_expression=cron,
                    max_concurrency=MAX_CONCURRENCY,
                    no_catchup=NO_CATCHUP,
                    params=arguments,
                    pipeline_package_path=str(package),
                    enabled=True,
                    pipeline_root=pipeline_root,
                    service_account=service_account,
                )
            )

    def schedules(self, limit: int = 100) -> list[ScheduleSummary]:
        with self._calling("list_recurring_runs"):
            jobs = self._client.list_recurring_runs(page_size=limit, sort_by="created_at desc").recurring_runs
            return [ScheduleSummary.of(j) for j in jobs or []]

    def pause(self, schedule_id: str) -> None:
        with self._calling("disable_recurring_run"):
            self._client.disable_recurring_run(schedule_id)

    def resume(self, schedule_id: str) -> None:
        with self._calling("enable_recurring_run"):
            self._client.enable_recurring_run(schedule_id)

    def delete(self, schedule_id: str) -> None:
        with self._calling("delete_recurring_run"):
            self._client.delete_recurring_run(schedule_id)

    def recent_runs(self, limit: int = 10) -> list[RunSummary]:
        with self._calling("list_runs"):
            runs = self._client.list_runs(page_size=limit, sort_by="created_at desc").runs
            return [RunSummary.of(r) for r in runs or []]
