"""A recurring comparison, end to end: the form a person fills in, every run's history, and the alerts.

Real runs with kfp.local on genuine digits; the KFP API server is the test double of tests/kfp_api_double.py,
and the webhook a real HTTP server on this machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import CPU, HOOK_PATH, OPTBENCH, env, invoke, run_args
from kfp import components, local

from optbench import kfp_api
from optbench.cli.cluster import compile_command

pytestmark = pytest.mark.e2e

SUITE = "name: nightly\nmodel: mlp\nepochs: 1\noptimizers: [adam, {name: sgd, learning_rate: %s}]\n"


def test_a_ui_run_with_only_suite_and_epochs_plans_and_runs_the_assignments_three_optimizers(api, tmp_path):
    package = tmp_path / "pipeline.yaml"
    assert invoke(compile_command, "--image", CPU, "--gpus", "0", "--output", str(package)).exit_code == 0
    kfp_api.Connection(host=api.url).pipelines().submit(
        package, {"suite": "seed-000", "epochs": 1}, experiment="ui", run_name="from-the-form"
    )
    (post,) = api.calls("POST", "/runs")
    assert post.body["runtime_config"]["parameters"] == {"suite": "seed-000", "epochs": 1}

    # What the cluster would run: the pipeline spec that reached the API, with the parameters the form sent.
    received = tmp_path / "received.yaml"
    received.write_text(yaml.safe_dump(post.body["pipeline_spec"]["pipeline_spec"]))
    pipeline = components.load_component_from_file(str(received))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = pipeline(**post.body["runtime_config"]["parameters"])
    rows = json.loads((Path(task.output.path) / "comparison.json").read_text())
    assert sorted(r["optimizer"] for r in rows) == ["adam", "rmsprop", "sgd"], "every variant of seed-000"
    assert all(r["epochs"] == 1 and r["status"] == "ok" for r in rows)
    html = (Path(task.output.path) / "report.html").read_text()
    assert all(variant in html for variant in ("adam", "rmsprop", "sgd"))


def test_two_runs_of_a_suite_the_second_flags_a_changed_learning_rate_and_every_run_alerts(
    tmp_path, idx_source, webhook
):
    received, url = webhook
    suite, output = tmp_path / "nightly.yaml", tmp_path / "runs"
    outputs = []
    for sgd_rate in ("0.01", "0.1"):  # a second run with nothing changed: test_soak.py
        suite.write_text(SUITE % sgd_rate)
        args = [*run_args(suite, idx_source, output), "--test-limit", "400", "--notify", url]
        result = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=1800)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outputs.append(result.stdout + result.stderr)
    run_dirs = sorted(
        output.iterdir(), key=lambda d: json.loads((d / "report" / "record.json").read_text())["finished_at"]
    )
    assert len(run_dirs) == 2

    changes = [json.loads((d / "report" / "changes.json").read_text()) for d in run_dirs]
    assert [m["metadata"]["event_payload"]["event"] for m in received] == ["finished", "changed"]
    assert [m["metadata"]["event_payload"]["run"] for m in received] == [d.name for d in run_dirs]
    flagged = received[1]["metadata"]["event_payload"]["changes"]
    assert "sgd: learning_rate 0.1, was 0.01" in flagged and "sgd: test accuracy" in flagged
    assert changes[0]["since"] is None and changes[1]["changed"] is True
    assert f"since run {run_dirs[0].name}: " in outputs[1] and "  - sgd: learning_rate 0.1, was 0.01" in outputs[1]
    report = (run_dirs[1] / "report" / "report.md").read_text()
    assert run_dirs[0].name in report and run_dirs[1].name in report, "the trend lines up the earlier runs"
    assert "sent (HTTP 200)" in report, "the report says the alert went out"

    # The webhook URL is a secret: in no file of any run, and in nothing the runs printed.
    for path in output.rglob("*"):
        if path.is_file():
            assert HOOK_PATH.encode() not in path.read_bytes(), path
    assert not any(HOOK_PATH in text for text in outputs)

    shown = subprocess.run([OPTBENCH, "runs", "--root", str(output)], capture_output=True, text=True, env=env())
    assert shown.returncode == 0, shown.stderr
    assert "nightly" in shown.stdout and all(d.name in shown.stdout for d in run_dirs)


def test_on_a_cluster_an_exit_handler_alerts_when_the_run_fails(tmp_path, webhook, monkeypatch):
    """The cluster's shape (notify_failures, as --notify-secret compiles it), run by kfp.local: a form value
    the plan refuses fails the run, and the exit task still tells the webhook."""
    from optbench.pipelines.pipeline import build_pipeline

    received, url = webhook
    monkeypatch.setenv("OPTBENCH_NOTIFY_URL", url)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=False)
    build_pipeline(runner="test", notify_failures=True)(suite="seed-000", epochs=-1)
    (alert,) = received
    payload = alert["metadata"]["event_payload"]
    assert (payload["event"], payload["suite"]) == ("failed", "seed-000")
    assert "failed" in alert["text"] and HOOK_PATH not in json.dumps(alert)
