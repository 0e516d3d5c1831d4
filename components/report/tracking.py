"""Export a comparison to an MLflow tracking store: where teams already look at their training runs.

One MLflow run per comparison (the pipeline run: its settings as params, the
report folder as its artifacts) with one nested run per trial (the trial's
optimizer, learning rate, batch size and seed as params; loss, accuracy,
val_loss and val_accuracy per epoch; test accuracy and loss, cost and wall
time), in the experiment `optbench-<suite>`, so runs of one suite line up.

The export is a convenience, never a reason to fail a comparison: a tracking
server that is down costs a bounded number of retries, then the failure is
logged and stated in the report. Credentials never travel in the URI (it is
shown in the report and kept in run.json); MLflow reads them from its own
environment variables (MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from optbench.components.shared.deadline import within
from optbench.components.shared.untrusted import SQLITE_URI

log = logging.getLogger(__name__)

# MLflow's HTTP client retries 7 times over minutes by default; a report waits this long at most.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
DEADLINE_SECONDS = 300.0  # the whole export (every trial's run) and the report's upload, each: a store that
# trickles is given up, and the report says so
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
TRIAL_METRICS = ("test_accuracy", "test_loss", "cost_seconds", "train_seconds", "steps")
TRIAL_PARAMS = ("variant", "optimizer", "learning_rate", "batch_size", "seed", "model", "status")
RUN_PARAMS = ("suite", "model", "epochs", "seeds", "protocol", "data_source", "dataset", "train_limit", "test_limit")
METRICS_PER_CALL = 1000  # MLflow's limit per log_batch


def experiment_name(suite: str) -> str:
    return f"optbench-{suite}"


def export_comparison(uri: str, settings: dict, histories: list[dict], rows: list[dict]):
    """Log the comparison's runs to MLflow at `uri`; returns (the comparison's MLflow run id, status for the
    report). On failure the run id is None and the status says why."""
    for key, value in HTTP_SETTINGS.items():
        os.environ.setdefault(key, value)
    suite = str(settings.get("suite") or "unnamed")
    status = {"tracking_uri": uri, "experiment": experiment_name(suite)}
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        parent = within(
            DEADLINE_SECONDS,
            f"the MLflow store {uri}",
            lambda: _log_runs(client, uri, suite, settings, histories, rows),
        )
    except Exception as e:  # noqa: BLE001 - any failure of the store is reported, never raised
        log.warning("MLflow export to %s failed: %s", uri, _first_line(e))
        return None, {**status, "status": f"failed: {_first_line(e)}"}
    status["status"] = f"exported: run {parent} and {len(histories)} trial runs"
    log.info("MLflow: %s in experiment %s at %s", status["status"], status["experiment"], uri)
    return parent, status


def attach_report(uri: str, run_id: str, report_dir: str) -> None:
    """Upload the finished report folder as the comparison run's artifacts (a failure is logged)."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        within(DEADLINE_SECONDS, f"the MLflow store {uri}", lambda: client.log_artifacts(run_id, report_dir, "report"))
    except Exception as e:  # noqa: BLE001 - the comparison and its runs stand without the copy
        log.warning("MLflow: the report could not be attached to run %s: %s", run_id, _first_line(e))


def _log_runs(client, uri: str, suite: str, settings: dict, histories: list[dict], rows: list[dict]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    experiment = experiment_name(suite)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, _artifact_root(uri))
    now = int(time.time() * 1000)
    run_id = str(settings.get("run_id") or "")
    parent = client.create_run(
        experiment_id, run_name=run_id or None, tags={"optbench.run_id": run_id, "optbench.suite": suite}
    ).info.run_id
    client.log_batch(parent, params=[Param(k, _text(settings.get(k))) for k in RUN_PARAMS if k in settings])
    per_trial = {s["trial"]: s for row in rows for s in row["per_seed"]}
    for history in histories:
        trial = history["trial"]
        run = client.create_run(
            experiment_id,
            run_name=trial,
            tags={"mlflow.parentRunId": parent, "optbench.run_id": run_id, "optbench.trial": trial},
        ).info.run_id
        params = [Param(k, _text(history.get(k))) for k in TRIAL_PARAMS if k in history]
        params += [Param(f"optimizer.{k}", _text(v)) for k, v in (history.get("optimizer_config") or {}).items()]
        metrics = [
            Metric(key, value, now, epoch["epoch"])
            for epoch in history.get("epochs") or []
            for key in EPOCH_METRICS
            if _is_number(value := epoch.get(key))
        ]
        tested = per_trial.get(trial, {})
        metrics += [Metric(k, tested[k], now, 0) for k in TRIAL_METRICS if _is_number(tested.get(k))]
        client.log_batch(run, params=params, tags=[RunTag("optbench.variant", history["variant"])])
        for start in range(0, len(metrics), METRICS_PER_CALL):
            client.log_batch(run, metrics=metrics[start : start + METRICS_PER_CALL])
        client.set_terminated(run)  # a diverged trial is a result, not a failed run: its status param says so
    client.set_terminated(parent)
    return parent


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its files: beside a local database (MLflow's default, ./mlruns, would land
    in whatever folder the step runs in); a tracking server decides for itself (None)."""
    if uri.startswith(SQLITE_URI):
        return (Path(uri.removeprefix(SQLITE_URI)).parent / "mlartifacts").resolve().as_uri()
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
