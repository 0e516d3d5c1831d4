"""Tune, then confirm: the choice on the tuning seed, and the trials that confirm it."""

from __future__ import annotations

import json

from helpers import single_trial

from optbench.components.question import suites
from optbench.components.shared.artifacts import SKIPPED, trained, write_skipped
from optbench.components.shared.files import read_json
from optbench.components.shared.schema import HISTORY_FILE
from optbench.components.shared.tuning import confirmed
from optbench.components.tune.tune import tuning


def _history(variant: str, lr: float, default: bool, val: float | None, status: str = "ok") -> dict:
    return {
        "variant": variant,
        "learning_rate": lr,
        "lr_sweep": not default,
        "seed": 0,
        "status": status,
        "epochs": [{"epoch": 1, "val_accuracy": val}],
    }


def test_the_best_on_validation_is_chosen_the_default_on_a_tie_and_a_diverged_rate_never():
    result = tuning(
        [
            _history("adam", 0.001, True, 0.90),
            _history("adam lr=0.01", 0.01, False, 0.93),
            _history("adam lr=0.1", 0.1, False, None, "diverged"),
            _history("sgd", 0.01, True, 0.80),
            _history("sgd lr=0.1", 0.1, False, 0.80),
            _history("adadelta", 1.0, True, None, "diverged"),
            _history("adadelta lr=0.1", 0.1, False, 0.5, "diverged"),
        ]
    )
    assert result["chosen"] == {"adam": "adam lr=0.01", "sgd": "sgd", "adadelta": "adadelta"}
    assert [p["learning_rate"] for p in result["grid"]["adam"]] == [0.001, 0.01, 0.1]  # sorted for the plot
    assert [p["chosen"] for p in result["grid"]["adam"]] == [False, True, False]
    assert result["grid"]["adam"][2]["val_accuracy"] is None and result["tuning_seeds"] == [0]


def test_the_confirming_trials_are_every_seed_of_the_default_and_the_choice():
    suite = suites.validate({"optimizers": ["adam", "sgd"], "lr_grid": [0.1], "seeds": 3, "protocol": "tune-confirm"})
    result = tuning(
        [
            _history("adam", 0.001, True, 0.9),
            _history("adam lr=0.1", 0.1, False, 0.2),
            _history("sgd", 0.01, True, 0.6),
            _history("sgd lr=0.1", 0.1, False, 0.8),
        ]
    )
    kept = [t for t in suites.expand(suite) if confirmed(t, result)]
    assert sorted({t["variant"] for t in kept}) == ["adam", "sgd", "sgd lr=0.1"]
    assert len(kept) == 9 and {t["seed"] for t in kept} == {0, 1, 2}


def test_a_trial_the_tune_step_did_not_choose_is_skipped_and_nothing_after_sees_it(tmp_path):
    trial = single_trial("adam", learning_rate=0.1)
    history = write_skipped(str(tmp_path / "skipped"), trial)
    assert history["status"] == SKIPPED and read_json(tmp_path / "skipped" / HISTORY_FILE) == history
    (tmp_path / "ran").mkdir()
    (tmp_path / "ran" / HISTORY_FILE).write_text(json.dumps({"trial": "adam.s0", "status": "ok"}))
    assert trained([str(tmp_path / "skipped"), str(tmp_path / "ran")]) == [str(tmp_path / "ran")]


def test_tune_confirm_needs_a_grid_and_a_known_protocol():
    import pytest

    with pytest.raises(suites.SuiteError, match="tunes over lr_grid"):
        suites.validate({"optimizers": ["adam"], "protocol": "tune-confirm"})
    with pytest.raises(suites.SuiteError, match="protocol must be one of default, tune-confirm"):
        suites.validate({"optimizers": ["adam"], "protocol": "tuned"})
    assert suites.validate({"optimizers": ["adam"]})["protocol"] == "default"
