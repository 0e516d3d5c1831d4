"""`optbench compile`: the KFP IR YAML a cluster runs, with images, GPUs, resources and the suite baked in."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from kfp import components as kfp_components

from optbench.cli.cluster import compile_command
from optbench.components.question import form
from optbench.pipelines import cluster
from optbench.pipelines.pipeline import PIPELINE_NAME, build_pipeline

CPU = "europe-docker.pkg.dev/proj/optbench/cpu:0.1.0"
GPU = "europe-docker.pkg.dev/proj/optbench/gpu@sha256:" + "ab" * 32
DATAFLOW = "europe-docker.pkg.dev/proj/optbench/dataflow:0.1.0"


def compile_yaml(tmp_path: Path, *args: str) -> tuple[dict, dict, Path]:
    """Run `optbench compile ARGS`; returns (pipeline spec, kubernetes platform spec, path)."""
    out = tmp_path / "pipeline.yaml"
    result = CliRunner().invoke(compile_command, [*args, "--output", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    spec, *platform = list(yaml.safe_load_all(out.read_text()))
    return spec, (platform[0]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if platform else {}), out


def tasks_by_component(spec: dict) -> dict[str, dict]:
    """Every task of the pipeline, the loops' bodies included, keyed by its component name."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {t["componentRef"]["name"]: t for dag in dags for t in dag["tasks"].values()}


def test_every_step_the_pipeline_creates_is_one_the_cluster_config_knows():
    seen = []
    for notify_failures, rounds in ((False, 0), (True, 0), (False, 1)):
        build_pipeline(lambda task, step: seen.append(step), notify_failures=notify_failures, rounds=rounds)
    assert set(seen) == {*cluster.STEPS, cluster.LIKE_TRAIN}


def test_the_parameters_are_the_form_each_described_and_no_plumbing(tmp_path):
    spec, _, _ = compile_yaml(tmp_path, "--image", CPU, "--gpus", "0")
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert list(params) == sorted(form.parameters())  # KFP sorts them
    for name, (_, default, description) in form.parameters().items():
        assert params[name]["description"] == description and len(description) > 20, name
        assert params[name]["defaultValue"] == default, name
    assert params["suite"]["defaultValue"] == "seed-004" and params["epochs"]["parameterType"] == "NUMBER_INTEGER"
    assert not {"trials", "settings_json", "train_threads", "beam_args", "baseline_trial"} & set(params)
    # the plan step takes every one of them, and is what the rest waits for
    plan = spec["root"]["dag"]["tasks"]["plan"]["inputs"]["parameters"]
    assert all(plan[name] == {"componentInputParameter": name} for name in params)
    assert "plan" in spec["root"]["dag"]["tasks"]["ingest"]["dependentTasks"]


def test_the_loops_iterate_over_the_plans_tasks_the_tune_steps_trials_and_the_evaluated_trials(tmp_path):
    spec, _, _ = compile_yaml(tmp_path, "--image", CPU, "--gpus", "0", "--protocol", "tune-confirm", "--lr-grid", "0.1")
    loops = [t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    items = sorted(t["parameterIterator"]["items"]["inputParameter"] for t in loops)
    assert items == [
        "pipelinechannel--evaluate-Output",
        "pipelinechannel--plan-Output",
        "pipelinechannel--tune-Output",
    ]
    report = spec["root"]["dag"]["tasks"]["report"]["inputs"]["artifacts"]
    assert report["tuning"]["taskOutputArtifact"] == {
        "outputArtifactKey": "tuning",
        "producerTask": "tune",
    }
    assert report["settings"]["taskOutputArtifact"] == {"outputArtifactKey": "settings", "producerTask": "plan"}


def test_seeds_until_decided_compile_a_look_and_a_round_per_seed_it_may_add(tmp_path):
    """One seed, up to three: a look after the run's seed, then two rounds (train, look); the steps after
    training read the added models and the test's record from the last look, and the step cost waits for it."""
    args = ("--image", CPU, "--gpus", "0", "--seeds", "1", "--until-decided", "--max-seeds", "3")
    spec, _, _ = compile_yaml(tmp_path, *args)
    tasks = spec["root"]["dag"]["tasks"]
    loops = sorted(
        t["parameterIterator"]["items"]["inputParameter"] for t in tasks.values() if "parameterIterator" in t
    )
    assert loops == [
        "pipelinechannel--decide-Output",
        "pipelinechannel--decide-next-Output",
        "pipelinechannel--evaluate-Output",
        "pipelinechannel--plan-Output",
        "pipelinechannel--tune-Output",
    ]
    assert {"decide", "decide-next", "decide-next-2"} <= set(tasks)
    assert tasks["plan"]["inputs"]["parameters"]["rounds"] == {"runtimeValue": {"constant": 2}}
    for consumer in ("evaluate", "report"):
        rounds = tasks[consumer]["inputs"]["artifacts"]["rounds"]["taskOutputArtifact"]
        assert rounds == {"outputArtifactKey": "rounds", "producerTask": "decide-next-2"}
    assert "decide-next-2" in tasks["step-cost"]["dependentTasks"]
    plain, _, _ = compile_yaml(tmp_path, "--image", CPU, "--gpus", "0")
    assert not any(name.startswith("decide") for name in plain["root"]["dag"]["tasks"])  # no test, no looks


def test_a_form_asking_for_more_rounds_than_the_pipeline_holds_is_refused_at_the_plan():
    from optbench.components.plan.plan import make_plan
    from optbench.components.question.options import RunConfig

    values = form.to_form(RunConfig(seeds=1, until_decided=True, max_seeds=5))
    assert make_plan(values, run_id="r", runner="t", rounds=4)["round_seeds"] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="needs 4 rounds.*holds 2.*--until-decided --max-seeds 5"):
        make_plan(values, run_id="r", runner="t", rounds=2)


def test_gpu_pipeline_loads_back_with_loop_gpu_request_node_selector_toleration_and_parameters(tmp_path):
    spec, k8s, path = compile_yaml(
        tmp_path,
        "--image",
        CPU,
        "--gpu-image",
        GPU,
        "--gpus",
        "2",
        "--gpu-type",
        "nvidia-l4",
        "--optimizers",
        "adam,sgd",
        "--epochs",
        "3",
        "--seeds",
        "2",
    )
    loaded = kfp_components.load_component_from_file(str(path))
    assert loaded.name == PIPELINE_NAME == spec["pipelineInfo"]["name"]

    # The options became the form's defaults.
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["optimizers"]["defaultValue"] == "adam,sgd" and params["seeds"]["defaultValue"] == 2
    assert params["epochs"]["defaultValue"] == 3
    assert set(loaded.component_spec.inputs) == set(params)

    # Training runs in a ParallelFor over the plan's trials.
    tasks = tasks_by_component(spec)
    assert "comp-train" in tasks and "comp-train" not in {
        t["componentRef"]["name"] for t in spec["root"]["dag"]["tasks"].values()
    }

    # The step cost is timed where the trials train: the same image, resources and GPU.
    executors = spec["deploymentSpec"]["executors"]
    on_gpu = ("exec-train", "exec-train-confirmed", "exec-step-cost")
    for name in on_gpu:
        train = executors[name]["container"]
        assert train["image"] == GPU
        assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert train["resources"]["accelerator"]["resourceCount"] == "2"
        assert k8s[name]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert k8s[name]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
        ]
    assert executors["exec-step-cost"]["container"]["resources"] == executors["exec-train"]["container"]["resources"]
    assert tasks["comp-train"]["retryPolicy"]["maxRetryCount"] == 2
    assert "retryPolicy" not in tasks["comp-step-cost"]

    for name, executor in executors.items():
        container = executor["container"]
        if name not in on_gpu:
            assert container["image"] == CPU, f"{name} runs the CPU image"
            assert "accelerator" not in container.get("resources", {})
            assert "nodeSelector" not in k8s[name] and "tolerations" not in k8s[name]
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert key in container["resources"], f"{name} has no {key}"
        assert k8s[name]["securityContext"]["runAsNonRoot"] is True

    caching = {name: task.get("cachingOptions", {}).get("enableCache", False) for name, task in tasks.items()}
    assert caching.pop("comp-ingest") is True
    assert not any(caching.values()), "only ingest is cached"


def test_gpus_0_compiles_a_cpu_only_pipeline(tmp_path):
    spec, k8s, _ = compile_yaml(tmp_path, "--image", CPU, "--gpus", "0")
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {CPU}
    assert not any("accelerator" in e["container"]["resources"] for e in executors.values())
    assert not any("nodeSelector" in e or "tolerations" in e for e in k8s.values())
    cpus = executors["exec-train"]["container"]["resources"]["resourceCpuLimit"]
    threads = tasks_by_component(spec)["comp-train"]["inputs"]["parameters"]["threads"]
    assert threads["runtimeValue"]["constant"] == int(cpus)


def test_images_come_from_the_config_file_and_the_command_line_wins(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"image": CPU, "gpu_image": GPU, "gpu_type": "nvidia-tesla-a100"}))
    spec, k8s, _ = compile_yaml(tmp_path, "--config", str(config), "--gpu-type", "nvidia-l4")
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["image"] == GPU
    assert spec["deploymentSpec"]["executors"]["exec-ingest"]["container"]["image"] == CPU
    assert k8s["exec-train"]["nodeSelector"]["labels"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"


def test_the_mlflow_store_comes_from_the_config_file_and_reaches_the_report_step(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"image": CPU, "gpus": 0, "mlflow_uri": "http://mlflow.mlflow:5000"}))
    spec, _, _ = compile_yaml(tmp_path, "--config", str(config))
    assert spec["root"]["inputDefinitions"]["parameters"]["mlflow_uri"]["defaultValue"] == "http://mlflow.mlflow:5000"
    report = spec["root"]["dag"]["tasks"]["report"]["inputs"]["parameters"]["mlflow_uri"]
    assert report == {"componentInputParameter": "mlflow_uri"}


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no image"),
        (["--image", "python:latest", "--gpus", "0"], "is not pinned"),
        (["--image", "registry:5000/optbench/cpu", "--gpus", "0"], "is not pinned"),
        (["--image", CPU], "needs the GPU image"),
        (
            ["--image", CPU, "--gpus", "0", "--dataflow-project", "p"],
            "--dataflow-region, --dataflow-temp-location, --dataflow-image",
        ),
        (["--image", CPU, "--gpus", "0", "--epochs", "0"], "epochs"),
    ],
)
def test_bad_settings_stop_before_any_yaml_is_written(tmp_path, args, message):
    result = CliRunner().invoke(compile_command, [*args, "--output", str(tmp_path / "p.yaml")])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "p.yaml").exists()


def test_config_file_with_an_unknown_key_is_refused(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("image: x:1\ngpu_imgae: y:1\n")
    result = CliRunner().invoke(compile_command, ["--config", str(config)])
    assert result.exit_code != 0 and "unknown key(s) gpu_imgae" in result.output


def test_dataflow_options_reach_the_beam_pipeline_options(tmp_path):
    from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions, WorkerOptions

    from optbench.components.shared.beam import pipeline_options

    spec, _, _ = compile_yaml(
        tmp_path,
        "--image",
        CPU,
        "--gpus",
        "0",
        "--dataflow-project",
        "my-proj",
        "--dataflow-region",
        "europe-west4",
        "--dataflow-temp-location",
        "gs://bkt/tmp",
        "--dataflow-image",
        DATAFLOW,
        "--dataflow-machine-type",
        "n2-standard-4",
        "--dataflow-service-account",
        "df@my-proj.iam.gserviceaccount.com",
        "--beam-arg=--max_num_workers=3",
    )
    args = spec["root"]["dag"]["tasks"]["ingest"]["inputs"]["parameters"]["beam_args"]["runtimeValue"]["constant"]
    options = pipeline_options(args)
    gcp = options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == ("my-proj", "europe-west4", "gs://bkt/tmp")
    assert gcp.service_account_email == "df@my-proj.iam.gserviceaccount.com"
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    workers = options.view_as(WorkerOptions)
    assert workers.machine_type == "n2-standard-4" and workers.max_num_workers == 3
    assert workers.sdk_container_image == DATAFLOW, "Dataflow workers run optbench's own image, with Beam's boot"
    # Dataflow's workers reach the Beam steps' outputs only at their gs:// URIs, not at the pod's /gcs/ mount.
    executors = spec["deploymentSpec"]["executors"]
    for step, uris in (("ingest", ("dataset.uri",)), ("evaluate", ("dataset.uri", "evaluation.uri"))):
        source = " ".join(executors[f"exec-{step}"]["container"]["command"])
        assert all(uri in source for uri in uris) and ".path," not in source.split(f"def {step}(")[1], step


def test_every_command_group_reaches_the_cli_with_the_names_users_type():
    from optbench.cli import main

    assert set(main.commands) == {
        "run",
        "suites",
        "optimizers",
        "estimate",
        "report",
        "compile",
        "submit",
        "schedule",
        "schedules",
        "runs",
        "artifacts",
        "images",
    }
    assert all(isinstance(c, click.Command) for c in main.commands.values())


def test_a_notify_secret_compiles_an_exit_handler_and_the_url_from_the_secret_only(tmp_path):
    spec, k8s, path = compile_yaml(tmp_path, "--image", CPU, "--gpus", "0", "--notify-secret", "optbench-notify")
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"exit-handler-1", "notify"}
    guarded = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert {"plan", "ingest", "evaluate", "report"} <= set(guarded), "the whole comparison is guarded"
    alert = tasks["notify"]
    assert alert["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert alert["dependentTasks"] == ["exit-handler-1"]
    assert "outputDefinitions" not in spec["root"], "KFP allows an exit handler no pipeline outputs"
    secret = {
        "secretName": "optbench-notify",
        "secretNameParameter": {"runtimeValue": {"constant": "optbench-notify"}},
        "keyToEnv": [{"secretKey": "url", "envVar": "OPTBENCH_NOTIFY_URL"}],
        "optional": False,
    }
    assert {name: e["secretAsEnv"] for name, e in k8s.items() if "secretAsEnv" in e} == {
        "exec-report": [secret],
        "exec-notify": [secret],
    }
    assert kfp_components.load_component_from_file(str(path)).name == PIPELINE_NAME


def test_without_a_notify_secret_there_is_no_exit_handler(tmp_path):
    spec, k8s, _ = compile_yaml(tmp_path, "--image", CPU, "--gpus", "0")
    assert "notify" not in spec["root"]["dag"]["tasks"]
    assert not any("secretAsEnv" in e for e in k8s.values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--notify-secret", "Bad_Name"], "not a Kubernetes Secret name"),
        (["--notify", "https://hooks.slack.com/services/T0/B0/SECRET42"], "--notify-secret optbench-notify"),
    ],
)
def test_a_webhook_url_never_goes_into_a_cluster_run(tmp_path, args, message):
    from optbench.cli.cluster import submit

    result = CliRunner().invoke(submit, ["--host", "http://127.0.0.1:9", "--image", CPU, "--gpus", "0", *args])
    assert result.exit_code != 0 and message in result.output and "SECRET42" not in result.output
