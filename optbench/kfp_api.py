"""The Kubeflow Pipelines API as optbench uses it: submit, follow, schedule and list runs.

A thin layer over `kfp.Client` (which speaks KFP's v2beta1 REST API). It exists
to keep our policy in one place - every run and schedule carries its suite's
parameters explicitly, a recurring comparison never overlaps itself nor
back-fills missed days - and to reduce the API's objects to the few fields the
CLI prints.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kfp takes most of a second to import; every optbench command would pay it
    import kfp

ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"  # the variable kfp.Client itself reads
FINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
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

    def client(self) -> kfp.Client:
        import kfp

        host = self.host or os.environ.get(ENDPOINT_ENV)
        if not host:
            raise ApiError(
                f"no KFP endpoint: pass --host or set {ENDPOINT_ENV} (e.g. http://localhost:8080 "
                "after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)"
            )
        with warnings.catch_warnings():  # kfp warns on every construction that it needs a v2 backend
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(
                host=host,
                existing_token=self.token,
                client_id=self.iap_client_id,
                other_client_id=self.other_client_id,
                other_client_secret=self.other_client_secret,
                namespace=self.namespace or "kubeflow",
                ssl_ca_cert=self.ssl_ca_cert,
            )


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
        details = run.run_details.task_details if run.run_details and run.run_details.task_details else []
        return cls(
            run_id=run.run_id,
            name=run.display_name or "",
            state=run.state or "RUNTIME_STATE_UNSPECIFIED",
            created_at=_time(run.created_at),
            finished_at=_time(run.finished_at),
            pipeline_root=run.runtime_config.pipeline_root if run.runtime_config else None,
            error=run.error.message if run.error else None,
            tasks=tuple((t.display_name or t.task_id, t.state or "") for t in details),
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
        cron = job.trigger.cron_schedule.cron if job.trigger and job.trigger.cron_schedule else None
        return cls(
            schedule_id=job.recurring_run_id,
            name=job.display_name or "",
            cron=cron,
            enabled=(job.status or job.mode) in ("ENABLED", "ENABLE"),
            max_concurrency=int(job.max_concurrency or 0),
            no_catchup=bool(job.no_catchup),
            created_at=_time(job.created_at),
        )


class Pipelines:
    """optbench's calls to one KFP API server."""

    def __init__(self, client: kfp.Client) -> None:
        self._client = client

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, created on first use (kfp.Client looks it up by name first)."""
        return self._client.create_experiment(name=name).experiment_id

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
        run = self._client.run_pipeline(
            experiment_id=self._experiment_id(experiment),
            job_name=run_name,
            pipeline_package_path=str(package),
            params=arguments,
            pipeline_root=pipeline_root,
            service_account=service_account,
        )
        return RunSummary.of(run)

    def run(self, run_id: str) -> RunSummary:
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
        job = self._client.create_recurring_run(
            experiment_id=self._experiment_id(experiment),
            job_name=name,
            cron_expression=check_cron(cron),
            max_concurrency=MAX_CONCURRENCY,
            no_catchup=NO_CATCHUP,
            params=arguments,
            pipeline_package_path=str(package),
            enabled=True,
            pipeline_root=pipeline_root,
            service_account=service_account,
        )
        return ScheduleSummary.of(job)

    def schedules(self, limit: int = 100) -> list[ScheduleSummary]:
        jobs = self._client.list_recurring_runs(page_size=limit, sort_by="created_at desc").recurring_runs or []
        return [ScheduleSummary.of(j) for j in jobs]

    def pause(self, schedule_id: str) -> None:
        self._client.disable_recurring_run(schedule_id)

    def resume(self, schedule_id: str) -> None:
        self._client.enable_recurring_run(schedule_id)

    def delete(self, schedule_id: str) -> None:
        self._client.delete_recurring_run(schedule_id)

    def recent_runs(self, limit: int = 10) -> list[RunSummary]:
        runs = self._client.list_runs(page_size=limit, sort_by="created_at desc").runs or []
        return [RunSummary.of(r) for r in runs]
