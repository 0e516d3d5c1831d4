"""The shipped suites, your own network, early stopping and tune-then-confirm, each through the whole pipeline.

Every shipped suite runs once: seed-000 as the form's default in test_recurring.py (the run a person starts from
the KFP UI), seed-004 here with your own network as a Python function (on the JAX backend, packed), modern and
batch-size as they ship. Your
network as a .keras file runs with tune-then-confirm. Each run is small: one to three epochs on at most 1,000
examples.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import OPTBENCH, env, finished_run, run_args

from optbench.components.ingest import idx
from optbench.components.question import suites
from optbench.components.shared.datasets import FASHION_MNIST

pytestmark = pytest.mark.e2e

# Where each shipped suite runs end to end.
SHIPPED = {
    "seed-000": "test_recurring.py::test_a_ui_run_with_only_suite_and_epochs_plans_and_runs_the_assignments_three",
    "seed-004": "test_your_own_network_as_a_function_runs_every_variant_of_the_default_suite_packed_on_jax",
    "modern": "test_a_shipped_suite_runs_and_reports_every_variant[modern]",
    "batch-size": "test_a_shipped_suite_runs_and_reports_every_variant[batch-size]",
}

NET = """
import keras
from keras import layers


def small_net():
    inp = keras.Input((28, 28))
    return keras.Model(inp, layers.Dense(10)(layers.Flatten()(inp)), name="small_net")
"""


def variants(suite: str) -> set[str]:
    return {t["variant"] for t in suites.expand(suites.load(suite))}


def reports_every_variant(run_dir: Path, expected: set[str]) -> None:
    rows = json.loads((run_dir / "report" / "comparison.json").read_text())
    assert {r["optimizer"] for r in rows} == expected and all(r["status"] == "ok" for r in rows)
    html = (run_dir / "report" / "report.html").read_text()
    assert all(variant in html for variant in expected)


def compiled_network_parameters(tmp_path: Path, model: str) -> int:
    """`optbench compile --model MODEL`: the parameters of the network the cluster's init task rebuilds from the IR."""
    import yaml

    from optbench.components.shared import models

    package = tmp_path / "pipeline.yaml"
    compiled = subprocess.run(
        [OPTBENCH, "compile", "--image", "example.com/o/cpu:1", "--gpus", "0", "--model", model, "--output", package],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert compiled.returncode == 0, compiled.stderr
    parameters = next(yaml.safe_load_all(package.read_text()))["root"]["inputDefinitions"]["parameters"]
    return models.build("", parameters["model_config"]["defaultValue"]).count_params()


def test_every_shipped_suite_runs_end_to_end_somewhere():
    assert set(suites.available()) == set(SHIPPED), "a new shipped suite needs an end-to-end run"


@pytest.mark.parametrize("suite", ["modern", "batch-size"])
def test_a_shipped_suite_runs_and_reports_every_variant(tmp_path, idx_source, suite):
    args = [
        *run_args(Path(suite), idx_source, tmp_path),
        "--epochs",
        "1",
        "--train-limit",
        "600",
        "--test-limit",
        "200",
    ]
    _, run_dir = finished_run(args, tmp_path)
    reports_every_variant(run_dir, variants(suite))


def test_your_own_network_as_a_function_runs_every_variant_of_the_default_suite_packed_on_jax(tmp_path, idx_source):
    """The default suite's six optimizers on your own network, on Keras's JAX backend, packed three to a task:
    two training tasks, and every trial still has its own history, model, per-step cost and row, which name the
    backend."""
    from optbench.storage import run_layout

    (tmp_path / "net.py").write_text(NET)
    spec = f"{tmp_path / 'net.py'}:small_net"
    args = [*run_args(Path("seed-004"), idx_source, tmp_path / "runs", train_limit=600), "--model", spec]
    args += ["--epochs", "1", "--test-limit", "200", "--backend", "jax", "--pack", "3"]
    _, run_dir = finished_run(args, tmp_path / "runs")
    reports_every_variant(run_dir, variants("seed-004"))
    html = (run_dir / "report" / "report.html").read_text()
    assert "small_net (7,850 parameters)" in html, "the network and its size are in the report"
    assert compiled_network_parameters(tmp_path, spec) == 7850, "the network travels in the compiled pipeline"
    rows = json.loads((run_dir / "report" / "comparison.json").read_text())
    assert [(r["backend"], r["packed_with"]) for r in rows] == [("jax", 3)] * 6
    assert all(r["step_seconds"] > 0 and r["cost_seconds"] > 0 for r in rows)
    histories = sorted(run_dir.glob("pipeline/*/*/train/model/*/history.json"))
    assert len(histories) == 6, "each pack of three wrote a folder per trial"
    assert all((h.parent / "saved_model" / "saved_model.pb").is_file() for h in histories)
    published = run_layout(run_dir)
    assert {f"{v}.s0" for v in variants("seed-004")} <= {n.split("/")[1] for n in published if n.startswith("models/")}
    assert "with Keras on jax" in (run_dir / "report" / "report.md").read_text()


def test_early_stopping_stops_trials_below_the_median_and_reports_them_as_stopped(tmp_path, idx_source):
    """Five trials, two at a time: adam and rmsprop start together with no one to compare with; adadelta, last,
    has at least two finished trials to be judged against at epoch 2 and is far below them."""
    suite = tmp_path / "es.yaml"
    suite.write_text(
        "optimizers: [adam, rmsprop, momentum, sgd, adadelta]\nmodel: mlp\nepochs: 3\n"
        "early_stopping: {grace_epochs: 1, min_trials: 2}\n"
    )
    mlflow = f"sqlite:///{tmp_path}/mlflow.db"
    result, run_dir = finished_run(
        [*run_args(suite, idx_source, tmp_path / "runs"), "--test-limit", "300", "--mlflow-uri", mlflow],
        tmp_path / "runs",
    )
    rows = {r["optimizer"]: r for r in json.loads((run_dir / "report" / "comparison.json").read_text())}
    assert rows["adadelta"]["status"] == "stopped" and rows["adadelta"]["stopped_at_epoch"] == 2
    assert rows["adadelta"]["epochs"] == 2 and rows["adadelta"]["test_accuracy"] is None
    for name in ("adam", "rmsprop"):
        assert rows[name]["status"] == "ok" and rows[name]["epochs"] == 3 and rows[name]["test_accuracy"] > 0
    stopped = [name for name, r in rows.items() if r["status"] == "stopped"]
    assert "adadelta (stopped at ep 2)" in result.stdout
    md = (run_dir / "report" / "report.md").read_text()
    assert "Stopped early by the median stopping rule" in md and all(f"{n} at epoch" in md for n in stopped)
    sig = json.loads((run_dir / "report" / "significance.json").read_text())
    assert not {c["other"] for c in sig["comparisons"]} & set(stopped)
    # --mlflow-uri reached the report step through the pipeline: every trial, stopped ones too, in MLflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow)
    (experiment,) = client.search_experiments(filter_string="name LIKE 'optbench-%'")
    trials = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert trials.pop(run_dir.name).data.tags["optbench.run_id"] == run_dir.name
    assert sorted(trials) == sorted(f"{n}.s0" for n in rows)
    assert trials["adadelta.s0"].data.params["status"] == "stopped"
    assert len(client.get_metric_history(trials["adadelta.s0"].info.run_id, "val_accuracy")) == 2


def test_tune_confirm_with_your_own_keras_file_reports_both_protocols_and_each_optimizers_sensitivity(tmp_path):
    """The grid on seed 0, each optimizer's choice on validation, then default and choice on both seeds; the network
    is a .keras file, the data an npz whose test split is Fashion-MNIST's (recognised by content) and whose
    training split is 1,200 of its training images."""
    from optbench.components.shared import models

    (tmp_path / "net.py").write_text(NET)
    models.build(*models.custom(f"{tmp_path / 'net.py'}:small_net")).save(tmp_path / "small_net.keras")
    (x_train, y_train), (x_test, y_test) = (idx.read_split(FASHION_MNIST.offline[0], s) for s in ("train", "test"))
    source = tmp_path / "fashion.npz"
    np.savez(source, x_train=x_train[:1200], y_train=y_train[:1200], x_test=x_test, y_test=y_test)
    args = [*run_args(Path("seed-004"), source, tmp_path / "runs"), "--optimizers", "adam,sgd"]
    args += ["--model", str(tmp_path / "small_net.keras"), "--lr-grid", "0.1", "--seeds", "2", "--epochs", "1"]
    _, run_dir = finished_run([*args, "--protocol", "tune-confirm", "--test-limit", "300"], tmp_path / "runs")
    report = run_dir / "report"
    rows = {r["optimizer"]: r for r in json.loads((report / "comparison.json").read_text())}
    tuned = {r["family"]: name for name, r in rows.items() if r["tuned"]}
    assert set(tuned) == {"adam", "sgd"} and {"adam", "sgd"} <= set(rows)
    assert set(rows) == {"adam", "sgd"} | set(tuned.values()), "only defaults and choices are confirmed"
    assert all(r["seeds_total"] == 2 and r["test_accuracy"] is not None for r in rows.values())
    md = (report / "report.md").read_text()
    assert "## Tuned, then confirmed" in md and (report / "sensitivity.png").exists()
    assert "Protocol: tune, then confirm: each optimizer's learning rate was chosen on validation accuracy" in md
    grid = [p for p in (run_dir / "pipeline").rglob("tuning.json")]
    (choice,) = [json.loads(p.read_text()) for p in grid]
    assert choice["chosen"] == tuned and {len(points) for points in choice["grid"].values()} == {2}
    html = (report / "report.html").read_text()
    assert "small_net (7,850 parameters)" in html
    assert "test 4550bfc5695e = Fashion-MNIST&#39;s" in html or "test 4550bfc5695e = Fashion-MNIST's" in html
    assert compiled_network_parameters(tmp_path, str(tmp_path / "small_net.keras")) == 7850


def test_seeds_until_decided_add_rounds_and_report_each_decision_and_when(tmp_path, idx_source):
    """One seed, then a round of one more seed of the leader and every undecided variant, up to two: every trial
    trains once, the report's rows count the seeds each variant got, and the verdict and the section say what
    was decided at which look, or that the budget ran out."""
    from optbench.layout import PIPELINE_LOG

    suite = tmp_path / "until.yaml"
    suite.write_text("optimizers: [adam, sgd, adadelta]\nmodel: mlp\nepochs: 1\nseeds: 1\n")
    args = [*run_args(suite, idx_source, tmp_path / "runs", 600), "--until-decided", "--max-seeds", "2"]
    result, run_dir = finished_run(args, tmp_path / "runs")
    report = run_dir / "report"
    record = json.loads((report / "sequential.json").read_text())
    assert record["max_seeds"] == 2 and record["first_seeds"] == 1 and record["stopped"] in ("decided", "budget")
    assert [look["seeds"] for look in record["looks"]] == list(range(2, 2 + len(record["looks"])))
    rows = {r["optimizer"]: r for r in json.loads((report / "comparison.json").read_text())}
    for variant, row in rows.items():
        trained = sorted(info["seed"] for info in record["trials"].values() if info["variant"] == variant)
        assert row["seeds"] == trained == list(range(len(trained)))  # seeds 0, 1, ... as rounds added them
        decided = record["decisions"].get(variant)
        if variant != record["leader"]:
            assert row["decision_vs_leader"] == (decided["decision"] if decided else "undecided")
    assert rows[record["leader"]]["seeds_total"] == max(r["seeds_total"] for r in rows.values())
    log = (run_dir / PIPELINE_LOG).read_text()
    for trial in record["trials"]:  # earlier rounds' trials are reused, never trained again
        assert log.count(f"train[{trial}] epoch 1/1") == 1, trial
    md = (report / "report.md").read_text()
    assert "## Seeds until decided" in md and "Seeds until decided (O'Brien-Fleming-type" in md.split("\n\n")[1]
    ran_out = "when the budget of 2 seeds ran out"
    assert (ran_out in md) == (record["stopped"] == "budget")
    assert f"run {run_dir.name} finished" in result.stdout
