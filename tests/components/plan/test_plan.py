"""The form and the plan step: what a person fills in, validated as the CLI validates it, expanded into trials."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from kfp import local

from optbench.cli.run import estimate_command
from optbench.components.plan.plan import make_plan, run_plan
from optbench.components.question import form, suites
from optbench.components.question.options import RunConfig
from optbench.components.shared.schema import PACK_KEY, PLAN_FILE
from optbench.pipelines.pipeline import build_pipeline


def filled(**values) -> dict:
    """The form as the KFP UI sends it: its defaults, and what the person changed."""
    return {name: default for name, (_, default, _) in form.parameters().items()} | values


def test_a_form_with_only_a_suite_and_epochs_plans_the_assignments_three_optimizers(tmp_path):
    trials = [
        json.loads(t) for t in run_plan(filled(suite="seed-000", epochs=1), str(tmp_path), run_id="r", runner="x")
    ]
    assert [t["trial"] for t in trials] == ["sgd.s0", "adam.s0", "rmsprop.s0"]
    plan = json.loads((tmp_path / PLAN_FILE).read_text())
    assert (plan["model_name"], plan["epochs"], plan["seeds"], plan["baseline_trial"]) == ("mlp", 1, [0], "sgd.s0")
    assert plan["settings"]["suite"] == "seed-000" and plan["settings"]["run_id"] == "r"
    assert plan["confirm_pool"] == [] and plan["early_stopping"] is None


@pytest.mark.parametrize(
    ("pack", "slots", "sizes"),
    [(0, 2, [3, 3]), (0, 4, [2, 2, 2]), (0, 0, [1] * 6), (1, 2, [1] * 6), (4, 0, [3, 3]), (6, 2, [6])],
)
def test_the_first_round_trains_in_packs_the_suite_or_else_the_runner_chooses(tmp_path, pack, slots, sizes):
    tasks = run_plan(filled(suite="seed-004", pack=pack), str(tmp_path), run_id="r", runner="x", slots=slots)
    packs = [json.loads(t).get(PACK_KEY, [json.loads(t)]) for t in tasks]
    assert sorted(len(p) for p in packs) == sorted(sizes)
    plan = json.loads((tmp_path / PLAN_FILE).read_text())
    assert [t["trial"] for p in packs for t in p] == [t["trial"] for t in plan["trials"]]
    assert plan["settings"]["pack"] == (pack or max(sizes))


def test_the_cli_and_the_form_ask_the_same_question():
    config = RunConfig(
        suite="seed-004",
        optimizers=["adam", "sgd"],
        epochs=3,
        batch_size="full",
        seeds=2,
        seed=5,
        lr_grid=[0.001, 0.1],
        protocol="tune-confirm",
        early_stopping=1,
        train_limit=900,
        mixed_precision=True,
    )
    values = form.to_form(config)
    assert set(values) == set(form.parameters())
    assert (values["optimizers"], values["batch_size"], values["lr_grid"]) == ("adam,sgd", "full", "0.001,0.1")
    back, model_config = form.from_form(values)
    assert back == config and model_config == ""
    plan = make_plan(values, run_id="r", runner="x")
    assert plan["suite"] == config.resolve()
    assert {t["seed"] for t in plan["trials"]} == {5} and {t["seed"] for t in plan["confirm_pool"]} == {5, 6}


def test_a_suite_file_travels_as_its_text_and_a_pasted_suite_is_planned(tmp_path):
    path = tmp_path / "nightly.yaml"
    path.write_text(
        "description: two optimizers\nmodel: mlp\nepochs: 2\noptimizers: [adam, {name: sgd, momentum: 0.9}]\n"
    )
    values = form.to_form(RunConfig(suite=str(path)))
    assert values["suite"] == "nightly" and yaml.safe_load(values["suite_yaml"]) == yaml.safe_load(path.read_text())
    assert "\n" not in values["suite_yaml"], "a line break in a default breaks the compiled file's header comment"
    plan = make_plan(values, run_id="r", runner="x")
    assert plan["settings"]["suite"] == "nightly" and plan["settings"]["optimizers"] == ["adam", "sgd"]
    assert plan["trials"][1]["params"]["momentum"] == 0.9


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": -1}, "epochs must be an integer in 1-1000, got -1"),
        ({"optimizers": "adam,adamx"}, "unknown optimizer(s) 'adamx'"),
        ({"batch_size": "big"}, "batch_size: expected a positive integer or 'full', got 'big'"),
        ({"lr_grid": "0.1,fast"}, "lr_grid: expected comma-separated numbers"),
        ({"suite": "seed-999"}, "unknown suite 'seed-999'"),
        ({"suite_yaml": "optimizers: [adam"}, "not valid YAML"),
        ({"suite_yaml": "optimizers: [adam]\nlearning_rate: 1"}, "unknown field(s) learning_rate"),
        ({"validation_fraction": 1.5}, "validation_fraction must be in (0, 1)"),
        ({"mlflow_uri": "ftp//x"}, "give a tracking URI"),
        ({"history_root": "s3://b/p"}, "give a folder or gs://BUCKET/PREFIX"),
        ({"model": "mine:build"}, "give model_config"),
        ({"model_config": "{not json"}, "model_config: not a Keras model config"),
        ({"margin": "wide"}, "margin: could not convert string to float"),
        ({"margin": "0.9"}, "margin must be a number in [0, 0.5], got 0.9"),
    ],
)
def test_a_bad_value_fails_the_plan_with_the_clis_message(values, message):
    with pytest.raises(ValueError) as caught:
        make_plan(filled(**values), run_id="r", runner="x")
    assert message in str(caught.value)


def test_the_cli_says_the_same_for_the_same_value():
    result = CliRunner().invoke(estimate_command, ["--epochs", "-1", "--costs-from", "x"])
    assert result.exit_code != 0 and "epochs must be an integer in 1-1000, got -1" in result.output


def test_the_form_lists_every_suite_option_and_the_plan_step_takes_exactly_the_form():
    from optbench.components.plan.component import plan

    inputs = plan.component_spec.inputs
    assert {f.metadata["flag"].removeprefix("--").replace("-", "_") for f in RunConfig.options()} < set(inputs)
    own = {"run_id", "runner", "rounds", "slots"}
    assert set(inputs) - own == set(form.parameters())
    kinds = {str: "String", int: "Integer", float: "Float", bool: "Boolean"}
    assert all(inputs[name].type == kinds[kind] for name, (kind, _, _) in form.parameters().items())
    assert len(suites.available()) >= 4


def test_a_bad_form_value_fails_the_pipeline_at_the_plan_step_before_any_work(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    with pytest.raises(RuntimeError, match="Inner task failed: .*plan"):
        build_pipeline(runner="test")(suite="seed-000", optimizers="adam,adamx")
    (run,) = tmp_path.iterdir()
    assert [p.name for p in run.iterdir()] == ["plan"], "nothing ran after the plan step"
