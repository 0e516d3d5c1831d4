"""The report step's export to an MLflow tracking store: a real store read back with MLflow's client, and a store
that is down."""

from __future__ import annotations

import math

from report_inputs import EPOCHS, SETTINGS, write_artifacts

from optbench.components.report.report import run_report
from optbench.components.shared.schema import COMPARISON_JSON, REPORT_HTML, REPORT_MD


def test_trials_are_exported_to_mlflow_and_read_back_with_its_client(tmp_path, inputs):
    from mlflow import MlflowClient

    histories, summary, stats, predictions = inputs
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # a real store, the one MLflow recommends
    rows = run_report(
        *write_artifacts(tmp_path, histories, summary, stats, predictions),
        SETTINGS,
        str(tmp_path / "report"),
        mlflow_uri=uri,
    )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"optbench-{SETTINGS['suite']}")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent = runs.pop(SETTINGS["run_id"])
    assert sorted(runs) == sorted(h["trial"] for h in histories)
    assert parent.data.params["suite"] == SETTINGS["suite"] and parent.data.params["epochs"] == str(EPOCHS)
    tested = {s["trial"]: s for r in rows for s in r["per_seed"]}
    for history in histories:
        run = runs[history["trial"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["optimizer"] == history["optimizer"]
        assert float(run.data.params["learning_rate"]) == history["learning_rate"]
        curve = client.get_metric_history(run.info.run_id, "val_accuracy")
        finite = [e for e in history["epochs"] if e["val_accuracy"] is not None and math.isfinite(e["val_accuracy"])]
        assert [(m.step, m.value) for m in curve] == [(e["epoch"], e["val_accuracy"]) for e in finite]
        if tested[history["trial"]]["test_accuracy"] is not None:
            assert run.data.metrics["test_accuracy"] == tested[history["trial"]]["test_accuracy"]
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{REPORT_HTML}", f"report/{COMPARISON_JSON}"} <= attached
    assert "exported: run" in (tmp_path / "report" / REPORT_MD).read_text()


def test_a_tracking_store_that_is_down_costs_the_run_nothing_and_the_report_says_so(tmp_path, inputs, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    rows = run_report(*write_artifacts(tmp_path, *inputs), SETTINGS, str(tmp_path / "report"), mlflow_uri=uri)
    assert rows and (tmp_path / "report" / REPORT_HTML).exists()
    markdown = (tmp_path / "report" / REPORT_MD).read_text()
    assert uri in markdown and "failed:" in markdown
    assert any("MLflow export to" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
