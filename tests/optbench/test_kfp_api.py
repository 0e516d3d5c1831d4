"""submit, schedule, schedules and runs against a test double of the KFP v2beta1 REST API (tests/kfp_api_double.py).

The double is a real HTTP server; kfp.Client talks to it as to a cluster, and
the tests assert what reached the wire: the pipeline spec, its parameters, the
experiment, the cron and the concurrency policy. Then the double misbehaves -
hangs, answers garbage, sends hostile ids and names - and the tests assert
what reaches the user: one line naming the endpoint and the call, escaped names.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from google.protobuf import json_format
from helpers import CPU, free_port, invoke
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_api_double import API, HANG

from optbench import kfp_api
from optbench.cli.cluster import compile_command, runs, schedule, schedules, submit
from optbench.pipelines.pipeline import PIPELINE_NAME

GPU = "europe-docker.pkg.dev/proj/optbench/gpu:0.1.0"
IMAGES = ["--image", CPU, "--gpu-image", GPU]
SUITE = ["--optimizers", "adam,sgd", "--epochs", "2"]


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
    params = body["runtime_config"]["parameters"]  # the form (components/question/form.py), as the CLI filled it in
    assert (params["suite"], params["optimizers"], params["epochs"]) == ("seed-004", "adam,sgd", 2)
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == set(defaults) and all(defaults[k]["defaultValue"] == v for k, v in params.items())
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
    assert body["runtime_config"]["parameters"]["optimizers"] == "adam,sgd"
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

    result = invoke(runs, "--live", "--host", api.url)
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
    result = invoke(runs, "--live", "--host", api.url)
    assert result.exit_code == 0
    (line,) = [line for line in result.stdout.splitlines() if "elsewhere" in line]
    assert line.endswith("?") and "0:07:00" in line
    assert "cannot read run" in result.stderr


def test_the_endpoint_comes_from_the_environment_or_is_asked_for(api, monkeypatch):
    assert "KF_PIPELINES_ENDPOINT" in (result := invoke(runs, "--live")).output and result.exit_code != 0
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", api.url)
    result = invoke(runs, "--live")
    assert result.exit_code == 0 and result.output == "no runs\n"
    assert api.calls("GET", "/runs") and all(r.path.startswith(API) for r in api.requests)


def test_submit_sends_what_compile_writes_and_the_plan_names_the_run_by_kfps_run_id(api, tmp_path):
    invoke(compile_command, *IMAGES, *SUITE, "--output", str(tmp_path / "compiled.yaml"))
    invoke(submit, "--host", api.url, *IMAGES, *SUITE, "--run-name", "r1", "--output", str(tmp_path / "sent.yaml"))
    (post,) = api.calls("POST", "/runs")
    sent = post.body["pipeline_spec"]
    assert sent == spec_as_the_client_sends_it(tmp_path / "compiled.yaml")
    plan = sent["pipeline_spec"]["root"]["dag"]["tasks"]["plan"]["inputs"]["parameters"]
    # every run of a schedule gets a run id of its own: the history tells them apart
    assert plan["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert plan["runner"]["runtimeValue"]["constant"] == "Kubeflow Pipelines"


# --- the API as hostile input ---


def error_line(result) -> str:
    """What a command that gave up shows: exit status 1 and one line on stderr, never a traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    return line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "command, args, method, path, call",
    [
        (runs, ["--live"], "GET", "/runs", "list_runs"),
        (runs, ["--live"], "GET", "/healthz", "get_kfp_healthz"),
        (submit, [*IMAGES, *SUITE], "POST", "/runs", "run_pipeline"),
    ],
)
def test_an_api_that_never_answers_is_given_up_on_naming_the_endpoint_and_the_call(
    api, monkeypatch, command, args, method, path, call
):
    monkeypatch.setattr(kfp_api, "TIMEOUT", 1.0)
    api.faults[path] = HANG
    line = error_line(invoke(command, "--host", api.url, *args))
    assert line == f"Error: the KFP API at {api.url} did not answer {call} within 1 s"
    assert len(api.calls(method, path)) == 1, "a request that was sent is not sent again"


def test_an_api_that_cannot_be_reached_is_named_with_the_tries_spent(api):
    host = f"http://127.0.0.1:{free_port()}"
    line = error_line(invoke(runs, "--live", "--host", host))
    assert line.startswith(f"Error: the KFP API at {host} could not be reached for get_kfp_healthz (3 tries): ")
    assert "Connection refused" in line


@pytest.mark.parametrize(
    "fault, problem",
    [
        ("malformed", "a body that is not JSON (Unterminated string starting at: line 1 column 22 (char 21); "),
        ("wrong_shape", """JSON list, not an object: '[{"run_id": "5f0c6c3e"}]'"""),
        ("html", "a body that is not JSON (Expecting value: line 1 column 1 (char 0); Content-Type text/html): "),
    ],
)
def test_an_answer_that_is_not_a_json_object_is_refused_naming_the_call(api, fault, problem):
    api.add_run("nightly-1", "SUCCEEDED", minutes=3)
    api.faults["/runs"] = fault
    line = error_line(invoke(runs, "--live", "--host", api.url))
    assert line.startswith(f"Error: the KFP API at {api.url} answered list_runs with an unusable response: {problem}")


def test_a_login_page_is_quoted_on_one_line(api):
    api.faults["/runs"] = "html"
    line = error_line(invoke(runs, "--live", "--host", api.url))
    assert line.endswith("""'<!DOCTYPE html> <html><head><title>Sign in - Google Accounts</title></head></html>'""")


def test_a_gateway_error_is_retried_within_the_budget_then_named_with_its_body(api):
    api.faults["/runs"] = "unavailable"
    line = error_line(invoke(runs, "--live", "--host", api.url))
    assert line == (
        f"Error: the KFP API at {api.url} answered list_runs with 503 Service Unavailable: "
        "<html><body> upstream connect error or disconnect/reset </body></html>"
    )
    assert len(api.calls("GET", "/runs")) == 1 + kfp_api.RETRIES


def test_a_post_is_never_retried(api):
    api.faults["/runs"] = "unavailable"
    line = error_line(invoke(submit, "--host", api.url, *IMAGES, *SUITE))
    assert line.startswith(f"Error: the KFP API at {api.url} answered run_pipeline with 503 Service Unavailable: ")
    assert len(api.calls("POST", "/runs")) == 1


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("run_id", "../../etc/passwd", "run id '../../etc/passwd' is not a plain name"),
        ("run_id", "\x1b[2J", "run id '\\x1b[2J' is not a plain name"),
        ("run_id", None, "run id None is not a plain name"),
        ("state", "EXPLODED", "run state 'EXPLODED' is not one of CANCELED, CANCELING, FAILED, PAUSED, PENDING, "),
        ("state", ["RUNNING"], "run state ['RUNNING'] is not one of"),
    ],
)
def test_an_id_or_state_the_api_sends_is_checked(api, field, value, problem):
    run = api.runs[api.add_run("nightly-1", "SUCCEEDED", minutes=3)]
    if value is None:
        del run[field]
    else:
        run[field] = value
    line = error_line(invoke(runs, "--live", "--host", api.url))
    assert line.startswith(f"Error: the KFP API at {api.url} answered list_runs with an unusable response: {problem}")
    assert "\x1b" not in line


def test_a_value_the_client_cannot_parse_is_named(api):
    api.runs[api.add_run("nightly-1", "SUCCEEDED", minutes=3)]["created_at"] = "yesterday"
    line = error_line(invoke(runs, "--live", "--host", api.url))
    assert line == (
        f"Error: the KFP API at {api.url} could not be used for list_runs: "
        "Failed to parse `yesterday` as datetime object"
    )


HOSTILE = "\x1b[2J\x1b]0;pwned\x07night\u202ely\n"
ESCAPED = "\\x1b[2J\\x1b]0;pwned\\x07night\\u202ely\\n"


def test_names_from_the_api_are_printed_escaped(api):
    api.add_run(HOSTILE, "RUNNING", minutes=3)
    result = invoke(runs, "--live", "--host", api.url)
    assert result.exit_code == 0, result.output
    (row,) = result.output.splitlines()[1:]
    assert ESCAPED in row and "\x1b" not in result.output and "\u202e" not in result.output


def test_task_names_and_schedule_names_are_printed_escaped(api):
    api.task_names = (HOSTILE,)
    result = invoke(submit, "--host", api.url, *IMAGES, *SUITE, "--wait", "--poll-seconds", "0")
    assert result.exit_code == 0, result.output
    assert f"  {ESCAPED}: SUCCEEDED" in result.output
    invoke(schedule, "--host", api.url, *IMAGES, *SUITE, "--cron", "0 0 3 * * *", "--name", HOSTILE)
    listed = invoke(schedules, "--host", api.url).output
    assert listed.rstrip("\n").endswith(ESCAPED) and "\x1b" not in listed


def test_an_experiment_id_is_checked_and_kfp_does_not_print_it_raw(api):
    api.experiments["\x1b[2J"] = {"experiment_id": "\x1b[2J", "display_name": "nightly"}
    result = invoke(submit, "--host", api.url, *IMAGES, *SUITE, "--experiment", "nightly")
    line = error_line(result)
    assert "answered create_experiment with an unusable response: experiment id '\\x1b[2J' is not a plain name" in line
    assert "\x1b" not in result.output and not api.calls("POST", "/runs")


@pytest.mark.parametrize("action", ["pause", "resume", "delete"])
@pytest.mark.parametrize("schedule_id", ["../x", "a/b:disable", "\x1b[2J", ""])
def test_a_schedule_id_on_the_command_line_is_checked_before_any_request(api, action, schedule_id):
    result = invoke(schedules, "--host", api.url, action, schedule_id)
    assert result.exit_code == 2 and "is not a plain name" in result.output and "\x1b" not in result.output
    assert api.requests == []
