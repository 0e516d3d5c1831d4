"""The decide step on real models: its first look leads and asks for the next seed of every variant, a later look
scores only the round just trained (earlier trials' predictions come from the previous look's folder, never from
their models again), and a test that has stopped sends the one placeholder its round's training skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from optbench.components.decide.decide import run_decide
from optbench.components.init_model.init_model import run_init_model
from optbench.components.plan.plan import make_plan
from optbench.components.question.form import to_form
from optbench.components.question.options import RunConfig
from optbench.components.shared.artifacts import read_sequential, round_models
from optbench.components.shared.files import read_json
from optbench.components.shared.predictions import load
from optbench.components.shared.schema import ROUND_MODELS_DIR, ROUND_PREDICTIONS_FILE, SAVED_MODEL_DIR, SEQUENTIAL_JSON
from optbench.components.train.train import run_train


def _plan(max_seeds: int) -> dict:
    config = RunConfig(
        optimizers=["adam", "sgd"], model_name="mlp", epochs=1, seeds=1, until_decided=True, max_seeds=max_seeds
    )
    return make_plan(to_form(config), run_id="r", runner="test", rounds=max_seeds - 1)


def _train(dataset: Path, initial: Path, root: Path, trials: list[dict]) -> list[str]:
    """Train each trial for the plan's one epoch; returns the model folders."""
    folders = []
    for trial in trials:
        folder = root / trial["trial"]
        run_train(str(dataset), str(initial), str(folder), trial, epochs=1)
        folders.append(str(folder))
    return folders


@pytest.fixture(scope="module")
def initial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("initial")
    for seed in range(3):
        run_init_model("mlp", seed, str(out))
    return out


def test_looks_lead_ask_for_seeds_and_reuse_what_earlier_looks_scored(tmp_path, tiny_dataset, initial):
    plan = _plan(max_seeds=3)
    assert plan["round_seeds"] == [1, 2]
    first = _train(tiny_dataset, initial, tmp_path / "first", plan["trials"])
    look1 = tmp_path / "look1"
    asked = [json.loads(t) for t in run_decide(str(tiny_dataset), first, None, plan, str(look1))]
    record = read_json(look1 / SEQUENTIAL_JSON)
    scored = load(look1 / ROUND_PREDICTIONS_FILE)
    accuracy = {t: float(scored.correct(t).mean()) for t in scored.predicted}
    assert record["leader"] == ("adam" if accuracy["adam.s0"] >= accuracy["sgd.s0"] else "sgd")
    assert record["looks"] == [] and record["stopped"] is None  # one seed: no look yet, every variant trains another
    assert sorted((t["variant"], t["seed"], t["trial"]) for t in asked) == [
        ("adam", 1, "adam.s1"),
        ("sgd", 1, "sgd.s1"),
    ]
    assert asked[0]["params"] == next(t for t in plan["trials"] if t["variant"] == asked[0]["variant"])["params"]
    assert list((look1 / ROUND_MODELS_DIR).iterdir()) == []  # the run's own models reach the later steps as they are

    added = _train(tiny_dataset, initial, tmp_path / "round1", asked)
    for folder in first:  # a later look never goes back to an earlier trial's model
        shutil.rmtree(Path(folder) / SAVED_MODEL_DIR)
    look2 = tmp_path / "look2"
    asked = [json.loads(t) for t in run_decide(str(tiny_dataset), added, str(look1), plan, str(look2))]
    record = read_json(look2 / SEQUENTIAL_JSON)
    assert sorted(load(look2 / ROUND_PREDICTIONS_FILE).predicted) == ["adam.s0", "adam.s1", "sgd.s0", "sgd.s1"]
    assert sorted(p.name for p in (look2 / ROUND_MODELS_DIR).iterdir()) == ["adam.s1", "sgd.s1"]
    (look,) = record["looks"]
    assert look["seeds"] == 2 and [p["other"] for p in look["pairs"]] == [c for c in record["contenders"]]
    assert {t: info["round"] for t, info in record["trials"].items()} == {
        "adam.s0": 0,
        "sgd.s0": 0,
        "adam.s1": 1,
        "sgd.s1": 1,
    }
    if record["stopped"]:  # decided at two seeds: the round that follows skips
        assert [t.get("skip") for t in asked] == [True]
    else:
        assert {t["seed"] for t in asked} == {2} and record["leader"] in {t["variant"] for t in asked}


def test_a_test_out_of_seeds_sends_the_placeholder_its_round_skips(tmp_path, tiny_dataset, initial):
    plan = _plan(max_seeds=2)
    look1 = tmp_path / "look1"
    asked = run_decide(
        str(tiny_dataset), _train(tiny_dataset, initial, tmp_path / "first", plan["trials"]), None, plan, str(look1)
    )
    added = _train(tiny_dataset, initial, tmp_path / "round1", [json.loads(t) for t in asked])
    (last,) = run_decide(str(tiny_dataset), added, str(look1), plan, str(tmp_path / "look2"))
    assert json.loads(last)["skip"] is True
    record = read_json(tmp_path / "look2" / SEQUENTIAL_JSON)
    assert record["stopped"] in ("budget", "decided") and len(record["looks"]) == 1
    # a look after the test stopped (the pipeline holds more rounds than were needed) keeps the record as it was
    (again,) = run_decide(str(tiny_dataset), [], str(tmp_path / "look2"), plan, str(tmp_path / "look3"))
    assert json.loads(again)["skip"] is True
    assert read_json(tmp_path / "look3" / SEQUENTIAL_JSON) == record


def test_a_pipeline_with_rounds_run_from_a_form_that_asks_for_none_skips_them(tmp_path, tiny_dataset):
    plan = make_plan(to_form(RunConfig(optimizers=["adam", "sgd"], model_name="mlp")), run_id="r", runner="t", rounds=2)
    (only,) = run_decide(str(tiny_dataset), [], None, plan, str(tmp_path / "look"))
    assert json.loads(only)["skip"] is True
    assert read_sequential(str(tmp_path / "look")) is None and round_models(str(tmp_path / "look")) == []
