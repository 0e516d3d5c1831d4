"""Suites: the shipped ones expand to the seeds' comparisons; bad suites fail with what is valid."""

from __future__ import annotations

import re

import pytest
import yaml

from optbench.components.question import suites
from optbench.components.question.suites import SuiteError


def test_shipped_suites_reproduce_the_seed_documents():
    s000 = suites.load("seed-000")
    assert s000["model"] == "mlp" and s000["batch_size"] == 64 and s000["epochs"] == 10
    assert [(t["optimizer"], t["learning_rate"]) for t in suites.expand(s000)] == [
        ("sgd", 0.01),
        ("adam", 0.001),
        ("rmsprop", 0.001),
    ]
    s004 = suites.load("seed-004")
    assert s004["model"] == "cnn" and [t["variant"] for t in suites.expand(s004)] == [
        "adadelta",
        "adagrad",
        "adam",
        "rmsprop",
        "sgd",
        "momentum",
    ]
    momentum = next(t for t in suites.expand(s004) if t["variant"] == "momentum")
    assert momentum["params"] == {"learning_rate": 0.01, "momentum": 0.9}
    from optbench.components.shared.optimizers import REGISTRY

    assert {t["optimizer"] for t in suites.expand(suites.load("modern"))} == set(REGISTRY)
    assert [(t["variant"], t["batch_size"]) for t in suites.expand(suites.load("batch-size"))] == [
        ("sgd bs=full", 0),
        ("sgd bs=1024", 1024),
        ("sgd bs=64", 64),
        ("sgd bs=1", 1),
    ]


def test_seeds_repeat_every_variant_and_lr_grid_adds_swept_variants():
    suite = suites.with_overrides(suites.load("seed-000"), seeds=3, first_seed=10, lr_grid=[0.1, 0.01])
    trials = suites.expand(suite)
    assert suite["seeds"] == [10, 11, 12]
    assert len(trials) == 3 * (2 + 3 + 3)  # sgd's default 0.01 is in the grid: not repeated
    assert {t["trial"] for t in trials if t["seed"] == 11} == {
        "sgd.s11",
        "sgdlr0.1.s11",
        "adam.s11",
        "adamlr0.1.s11",
        "adamlr0.01.s11",
        "rmsprop.s11",
        "rmsproplr0.1.s11",
        "rmsproplr0.01.s11",
    }
    assert all(t["lr_sweep"] == ("lr=" in t["variant"]) for t in trials)
    assert len({t["trial"] for t in trials}) == len(trials)


def test_overrides_keep_full_batch_and_the_batch_size_dimension():
    suite = suites.with_overrides(suites.load("batch-size"), epochs=2)
    assert [t["batch_size"] for t in suites.expand(suite)] == [0, 1024, 64, 1]
    assert suites.with_overrides(suites.load("seed-000"), batch_size="full")["batch_size"] == 0


def test_overrides_keep_a_valid_baseline():
    suite = suites.with_overrides(suites.load("seed-004"), optimizers=["adam", "rmsprop"])
    assert suite["baseline"] is None, "sgd left the comparison, so there is no baseline"
    assert suites.with_overrides(suites.load("seed-004"), optimizers=["adam", "sgd"])["baseline"] == "sgd"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"optimizers": ["adamm"]}, "unknown optimizer(s) 'adamm'; valid: sgd, momentum, nesterov"),
        ({"optimizers": ["adam"], "model": "vgg"}, "unknown model 'vgg'; valid: mlp, cnn, rnn"),
        ({"optimizers": ["adam"], "epochs": 0}, "epochs must be an integer in 1-1000, got 0"),
        ({"optimizers": ["adam"], "batch_size": -3}, "batch_size must be a positive integer or 'full'"),
        ({"optimizers": [{"name": "adam", "learning_rate": -1}]}, "adam.learning_rate must be a number in (0, 10000]"),
        ({"optimizers": [{"name": "sgd", "momentum": 1.5}]}, "sgd.momentum must be a number in [0, 1]"),
        (
            {"optimizers": [{"name": "adam", "momentum": 0.9}]},
            "adam has no hyperparameter 'momentum'; valid: learning_rate",
        ),
        ({"optimizers": ["adam", "adam"]}, "optimizer(s) listed twice: adam"),
        ({"optimizers": ["adam"], "seeds": 0}, "seeds must be an integer in 1-50"),
        ({"optimizers": ["adam"], "lr_grid": []}, "lr_grid must be a non-empty list"),
        ({"optimizers": ["adam"], "baseline": "sgd"}, "baseline 'sgd' is not one of the suite's variants: adam"),
        (
            {"optimizers": ["adam"], "thresholds": {"min_acc": 0.9}},
            "thresholds takes min_accuracy, max_drop_vs_baseline",
        ),
        ({"optimizers": ["adam"], "epoch": 3}, "unknown field(s) epoch; valid: name"),
        ([1, 2], "a suite is a mapping"),
    ],
)
def test_invalid_suites_name_the_field_and_what_is_valid(raw, message):
    with pytest.raises(SuiteError) as e:
        suites.validate(raw, source="my-suite.yaml")
    assert message in str(e.value) and "my-suite.yaml" in str(e.value)


def test_a_user_suite_file_is_loaded_and_checked(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {"model": "rnn", "optimizers": [{"name": "adamw", "weight_decay": 0.01}], "seeds": 2, "epochs": 3}
        )
    )
    suite = suites.load(str(path))
    assert suite["name"] == "mine" and [t["trial"] for t in suites.expand(suite)] == ["adamw.s0", "adamw.s1"]
    path.write_text("optimizers: [adam\n")
    with pytest.raises(SuiteError, match="mine.yaml: not valid YAML"):
        suites.load(str(path))
    with pytest.raises(SuiteError, match="unknown suite 'nope': not a file, and the shipped suites are batch-size"):
        suites.load("nope")


def test_early_stopping_is_off_unless_asked_and_checked_when_it_is():
    assert suites.validate({"optimizers": ["sgd"]})["early_stopping"] is None
    on = suites.validate({"optimizers": ["sgd"], "epochs": 5, "early_stopping": {"grace_epochs": 2}})
    assert on["early_stopping"] == {"grace_epochs": 2, "min_trials": suites.MIN_TRIALS}
    cli = suites.with_overrides(suites.load("seed-004"), early_stopping=3)
    assert cli["early_stopping"] == {"grace_epochs": 3, "min_trials": 3}
    for value, message in (
        ({"grace_epochs": 10}, "early_stopping.grace_epochs must be an integer in 1-9"),
        ({"grace": 1}, "early_stopping takes grace_epochs (required) and min_trials"),
        ({"grace_epochs": 1, "min_trials": 0}, "early_stopping.min_trials must be an integer in 1-10000"),
        ("median", "early_stopping takes grace_epochs"),
    ):
        with pytest.raises(SuiteError, match=re.escape(message)):
            suites.validate({"optimizers": ["sgd"], "early_stopping": value})
    with pytest.raises(SuiteError, match="needs at least 2 epochs"):
        suites.validate({"optimizers": ["sgd"], "epochs": 1, "early_stopping": {"grace_epochs": 1}})


def test_the_margin_of_equivalence_defaults_to_half_a_point_and_is_checked_from_yaml_the_cli_and_the_form():
    from optbench.components.question.form import from_form, to_form
    from optbench.components.question.options import RunConfig

    assert suites.validate({"optimizers": ["sgd"]})["margin"] == suites.DEFAULT_MARGIN == 0.005
    assert suites.validate({"optimizers": ["sgd"], "margin": 0})["margin"] == 0.0  # off
    for value in (-0.01, 0.6, "half a point", True, None):
        with pytest.raises(SuiteError, match=r"margin must be a number in \[0, 0.5\]"):
            suites.validate({"optimizers": ["sgd"], "margin": value})
    assert RunConfig(margin=0.02).resolve()["margin"] == 0.02
    with pytest.raises(SuiteError, match="margin"):
        RunConfig(margin=2.0).resolve()
    # the form: empty is the suite's; a value comes back as the same RunConfig
    assert from_form(to_form(RunConfig()))[0].margin is None
    assert from_form(to_form(RunConfig(margin=0.01)))[0].resolve()["margin"] == 0.01


def test_seeds_until_decided_take_a_budget_above_the_runs_seeds_from_yaml_the_cli_and_the_form():
    from optbench.components.question.form import from_form, to_form
    from optbench.components.question.options import RunConfig

    off = suites.validate({"optimizers": ["sgd", "adam"]})
    assert off["until_decided"] is False and off["max_seeds"] is None and suites.round_seeds(off) == []
    on = suites.validate({"optimizers": ["sgd", "adam"], "seeds": [3, 7], "until_decided": True})
    assert on["max_seeds"] == suites.DEFAULT_MAX_SEEDS == 5
    assert suites.round_seeds(on) == [8, 9, 10]  # after the suite's own seeds, one a round
    bad = {
        "max seeds alone": ({"max_seeds": 4}, "max_seeds is the budget of until_decided: set until_decided too"),
        "not a flag": ({"until_decided": "yes"}, "until_decided must be true or false"),
        "no room": ({"until_decided": True, "seeds": 3, "max_seeds": 3}, r"max_seeds \(3\) must be above"),
        "too many": ({"until_decided": True, "max_seeds": 500}, "max_seeds must be an integer in 2-50"),
        "a sweep": ({"until_decided": True, "lr_grid": [0.1]}, "with lr_grid use protocol tune-confirm"),
        "stopping": ({"until_decided": True, "early_stopping": {"grace_epochs": 1}}, "turn early_stopping off"),
    }
    for raw, message in bad.values():
        with pytest.raises(SuiteError, match=message):
            suites.validate({"optimizers": ["sgd", "adam"], **raw})
    # the CLI's and the form's values reach the same suite; the budget counts against max_trials
    assert RunConfig(until_decided=True).resolve()["max_seeds"] == suites.DEFAULT_MAX_SEEDS  # the flag alone
    config = RunConfig(optimizers=["sgd", "adam"], seeds=2, until_decided=True, max_seeds=4)
    assert config.resolve()["max_seeds"] == 4 and from_form(to_form(config))[0].resolve() == config.resolve()
    five = ["sgd", "adam", "rmsprop", "adagrad", "adadelta"]
    with pytest.raises(SuiteError, match=r"expands to 250 trials .* x 50 seeds"):
        RunConfig(optimizers=five, until_decided=True, max_seeds=50).resolve()
