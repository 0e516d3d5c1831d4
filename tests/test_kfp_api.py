"""submit, schedule, schedules and runs against a test double of the KFP v2beta1 REST API (tests/kfp_api_double.py).

The double is a real HTTP server; kfp.Client talks to it as to a cluster, and
the tests assert what reached the wire: the pipeline spec, its parameters, the
experiment, the cron and the concurrency policy.
"""

from __future__ import annotations

import json
import re

import kfp
import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_api_double import API, KfpApiDouble

from optbench.cli.cluster import compile_command, runs, schedule, schedules, submit
from optbench.pipelines.pipeline import PIPELINE_NAME

CPU = "europe-docker.pkg.dev/proj/optbench/cpu:0.1.0"
GPU = "europe-docker.pkg.dev/proj/optbench/gpu:0.1.0"
IMAGES = ["--image", CPU, "--gpu-image", GPU]
SUITE = ["--optimizers", "adam,sgd", "--epochs", "2"]


@pytest.fixture
def api(monkeypatch, tmp_path):
    # kfp.Client reads (and set_user_namespace writes) ~/.config/kfp/context.json: keep the user's out of it.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    with KfpApiDouble() as double:
        yield double


def invoke(command, *args: str):
    result = CliRunner().invoke(command, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def spec_as_the_client_sends_it(path) -> dict:
    """The compiled YAML as kfp.Client puts it in a request: {pipeline_spec, platform_spec}, through protobuf."""
    spec, platform = yaml.safe_load_all(path.read_text())
    return {
        "pipeline_spec": json_format.MessageToDict(json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())),
        "platform_spec": json_format.MessageToDict(json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())),
    }


def test_submit_sends_the_compiled_spec_with_its_parameters_to_the_experiment(api, tmp_path):
    result = invoke(
        submit,
        "--host",
        api.url,
        "--token",
        "t0ken",
        *IMAGES,
        *SUITE,
        "--experiment",
        "nightly",
        "--run-name",
        "adam-vs-sgd",
        "--pipeline-root",
        "gs://bkt/root",
        "--output",
        str(tmp_path / "sent.yaml"),
    )
    assert result.exit_code == 0, result.output

    (lookup,) = api.calls("GET", "/experiments")
    assert json.loads(lookup.query["filter"][0])["predicates"][0]["stringValue"] == "nightly"
    (created,) = api.calls("POST", "/experiments")
    assert created.body["display_name"] == "nightly"
    (experiment_id,) = api.experiments

    (post,) = api.calls("POST", "/runs")
    body = post.body
    assert post.headers["authorization"] == "Bearer t0ken"
    assert body["display_name"] == "adam-vs-sgd" and body["experiment_id"] == experiment_id
    assert body["pipeline_spec"] == spec_as_the_client_sends_it(tmp_path / "sent.yaml")
    spec = body["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["image"] == GPU
    params = body["runtime_config"]["parameters"]
    assert [json.loads(t)["trial"] for t in params["trials"]] == ["adam.s0", "sgd.s0"]
    assert params["epochs"] == 2 and params["baseline_trial"] == "sgd.s0"
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert all(defaults[k]["defaultValue"] == params[k] for k in ("trials", "epochs", "baseline_trial"))
    assert body["runtime_config"]["pipeline_root"] == "gs://bkt/root"

    (run_id,) = api.runs
    assert f"submitted run {run_id} (adam-vs-sgd) to experiment nightly" in result.output
    # The token travels in the Authorization header and nowhere else.
    assert "t0ken" not in json.dumps(body) and "t0ken" not in result.output
    assert "t0ken" not in (tmp_path / "sent.yaml").read_text()


def test_submit_reuses_an_existing_experiment(api):
    for _ in range(2):
        assert invoke(submit, "--host", api.url, *IMAGES, *SUITE).exit_code == 0
    assert len(api.calls("POST", "/experiments")) == 1
    assert {r["experiment_id"] for r in api.runs.values()} == set(api.experiments)
    assert [e["display_name"] for e in api.experiments.values()] == ["optbench-seed-004"]


def test_submit_wait_follows_the_run_and_its_tasks_to_the_end(api):
    result = invoke(submit, "--host", api.url, *IMAGES, *SUITE, "--wait", "--poll-seconds", "0")
    assert result.exit_code == 0, result.output
    states = re.findall(r"^run \S+: (\w+)", result.output, flags=re.M)
    assert states == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert "  train (Keras): RUNNING" in result.output and "  train (Keras): SUCCEEDED" in result.output
    assert len(api.calls("GET", f"/runs/{next(iter(api.runs))}")) == 3


def test_submit_wait_fails_when_the_run_fails(api):
    api.run_states = ["RUNNING", "FAILED"]
    result = invoke(submit, "--host", api.url, *IMAGES, *SUITE, "--wait", "--poll-seconds", "0")
    assert result.exit_code != 0
    assert "ended FAILED: train (Keras) failed: OOMKilled" in result.output


def test_schedule_creates_a_recurring_run_one_at_a_time_without_catch_up(api, tmp_path):
    result = invoke(
        schedule,
        "--host",
        api.url,
        *IMAGES,
        *SUITE,
        "--cron",
        "0 0 3 * * *",
        "--name",
        "nightly",
        "--pipeline-root",
        "gs://bkt/root",
        "--output",
        str(tmp_path / "sent.yaml"),
    )
    assert result.exit_code == 0, result.output
    (post,) = api.calls("POST", "/recurringruns")
    body = post.body
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert "periodic_schedule" not in body["trigger"]
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True
    assert body["mode"] == "ENABLE" and body["display_name"] == "nightly"
    assert body["experiment_id"] in api.experiments
    assert body["pipeline_spec"] == spec_as_the_client_sends_it(tmp_path / "sent.yaml")
    assert [json.loads(t)["trial"] for t in body["runtime_config"]["parameters"]["trials"]] == ["adam.s0", "sgd.s0"]
    assert body["runtime_config"]["pipeline_root"] == "gs://bkt/root"
    (job_id,) = api.recurring_runs
    assert f"scheduled {job_id} (nightly): cron '0 0 3 * * *', max concurrency 1, catch-up off" in result.output


@pytest.mark.parametrize("cron", ["0 3 * * *", "0 0 3 * * * *"])
def test_schedule_refuses_a_cron_without_six_fields_before_any_request(api, cron):
    result = invoke(schedule, "--host", api.url, *IMAGES, "--cron", cron)
    assert result.exit_code != 0 and "KFP cron has six fields" in result.output
    assert api.requests == []


def test_schedules_lists_pauses_resumes_and_deletes(api):
    for name in ("nightly", "weekly"):
        invoke(schedule, "--host", api.url, *IMAGES, *SUITE, "--cron", "0 0 3 * * *", "--name", name)
    ids = {j["display_name"]: j["recurring_run_id"] for j in api.recurring_runs.values()}

    def listing() -> dict[str, str]:
        out = invoke(schedules, "--host", api.url).output
        return {line.split()[0]: line.split()[1] for line in out.splitlines()}

    assert listing() == {ids["nightly"]: "enabled", ids["weekly"]: "enabled"}
    assert invoke(schedules, "--host", api.url, "pause", ids["nightly"]).output == f"paused {ids['nightly']}\n"
    assert len(api.calls("POST", f"/recurringruns/{ids['nightly']}:disable")) == 1
    assert listing() == {ids["nightly"]: "paused", ids["weekly"]: "enabled"}
    invoke(schedules, "--host", api.url, "resume", ids["nightly"])
    assert len(api.calls("POST", f"/recurringruns/{ids['nightly']}:enable")) == 1
    assert listing()[ids["nightly"]] == "enabled"
    invoke(schedules, "--host", api.url, "delete", ids["weekly"])
    assert len(api.calls("DELETE", f"/recurringruns/{ids['weekly']}")) == 1
    assert listing() == {ids["nightly"]: "enabled"}


def test_schedules_names_an_unknown_id(api):
    result = invoke(schedules, "--host", api.url, "pause", "no-such-id")
    assert result.exit_code != 0 and "404" in result.output and "no-such-id" in result.output


def test_runs_shows_state_duration_and_the_best_optimizer_from_the_report(api, gcs, monkeypatch):
    client, bucket = gcs
    done = api.add_run("nightly-1", "SUCCEEDED", minutes=42, pipeline_root=f"gs://{bucket.name}/root")
    api.add_run("nightly-2", "RUNNING", minutes=5)
    failed = api.add_run("broken", "FAILED", minutes=3)
    rows = [
        {"optimizer": "sgd", "test_accuracy": 0.91, "best": False},
        {"optimizer": "adam", "test_accuracy": 0.98, "best": True},
        {"optimizer": "adadelta", "test_accuracy": None, "best": False},
    ]
    # Where KFP writes the report step's output: <root>/<pipeline>/<run id>/<task>/<execution>/<output>/
    bucket.blob(f"root/{PIPELINE_NAME}/{done}/report/7/report_dir/comparison.json").upload_from_string(json.dumps(rows))

    result = invoke(runs, "--host", api.url)
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines()[1:]}
    assert result.output.splitlines()[0].split()[:3] == ["RUN", "ID", "NAME"]
    assert done in lines["nightly-1"] and "SUCCEEDED" in lines["nightly-1"]
    assert "0:42:00" in lines["nightly-1"] and lines["nightly-1"].endswith("adam 0.9800")
    assert "RUNNING" in lines["nightly-2"] and re.search(r" 0:0[56]:\d\d ", lines["nightly-2"])
    assert lines["nightly-2"].endswith("-")
    assert failed in lines["broken"] and "FAILED" in lines["broken"] and lines["broken"].endswith("-")
    (listed,) = api.calls("GET", "/runs")
    assert listed.query["sort_by"] == ["created_at desc"] and listed.query["page_size"] == ["10"]


def test_runs_still_lists_when_a_report_cannot_be_read(api, gcs):
    api.add_run("elsewhere", "SUCCEEDED", minutes=7, pipeline_root="gs://no-such-bucket/root")
    result = invoke(runs, "--host", api.url)
    assert result.exit_code == 0
    (line,) = [line for line in result.stdout.splitlines() if "elsewhere" in line]
    assert line.endswith("?") and "0:07:00" in line
    assert "cannot read run" in result.stderr


def test_the_endpoint_comes_from_the_environment_or_is_asked_for(api, monkeypatch):
    assert "KF_PIPELINES_ENDPOINT" in (result := invoke(runs)).output and result.exit_code != 0
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", api.url)
    result = invoke(runs)
    assert result.exit_code == 0 and result.output == "no runs\n"
    assert api.calls("GET", "/runs") and all(r.path.startswith(API) for r in api.requests)


def test_submit_uses_the_same_compile_as_optbench_compile_naming_the_run_in_the_settings(api, tmp_path):
    invoke(compile_command, *IMAGES, *SUITE, "--output", str(tmp_path / "compiled.yaml"))
    invoke(submit, "--host", api.url, *IMAGES, *SUITE, "--run-name", "r1", "--output", str(tmp_path / "sent.yaml"))
    (post,) = api.calls("POST", "/runs")

    def settings(spec: dict) -> dict:
        return json.loads(
            spec["pipeline_spec"]["root"]["inputDefinitions"]["parameters"].pop("settings_json")["defaultValue"]
        )

    sent, compiled = post.body["pipeline_spec"], spec_as_the_client_sends_it(tmp_path / "compiled.yaml")
    assert (settings(sent)["run_id"], settings(compiled)["run_id"]) == ("r1", "")
    assert sent == compiled
    assert json.loads(post.body["runtime_config"]["parameters"]["settings_json"])["runner"] == "Kubeflow Pipelines"
