"""The step-cost step: a per-step cost that is a property of the optimizer, whatever trained beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import single_trial

from optbench.components.init_model.init_model import run_init_model
from optbench.components.report.comparison import comparison_rows
from optbench.components.shared.files import read_json
from optbench.components.shared.schema import HISTORY_FILE, STEP_COST_FILE
from optbench.components.step_cost.step_cost import MIN_ROUNDS, measure, run_step_cost
from optbench.components.train.train import time_to_accuracy

TARGET = 0.5  # a validation accuracy the MLP reaches on 1,000 digits within two epochs

# One trial's training in its own process, as the pipeline runs it; `hogs` extra processes spin on the cores
# for as long as it trains: the trial slowed on purpose, and every trial beside it with it.
TRAIN = """
import json, multiprocessing, sys
from optbench.components.train.train import run_train

def spin():
    while True:
        pass

dataset, initial, out, trial, hogs = sys.argv[1:]
spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(int(hogs))]
for p in spinners:
    p.start()
run_train(dataset, initial, out, json.loads(trial), epochs=2, threads=1)
for p in spinners:
    p.kill()
"""
# The step-cost step in its own process, with the trials' one thread (TensorFlow fixes its threads once).
STEP_COST = """
import json, sys
from optbench.components.step_cost.step_cost import run_step_cost

dataset, initial, dirs, out = sys.argv[1:]
run_step_cost(dataset, initial, json.loads(dirs), out, threads=1)
"""


def test_interleaved_rounds_give_each_function_its_own_median():
    def sleeper(seconds):
        return lambda: time.sleep(seconds)

    timed = measure({"short": sleeper(0.002), "long": sleeper(0.010)}, rounds=MIN_ROUNDS)
    assert {t["rounds"] for t in timed.values()} == {MIN_ROUNDS}
    assert timed["short"]["q1"] <= timed["short"]["seconds_per_step"] <= timed["short"]["q3"]
    assert 0.002 <= timed["short"]["seconds_per_step"] < timed["long"]["seconds_per_step"]
    assert 2 < timed["long"]["seconds_per_step"] / timed["short"]["seconds_per_step"] < 6  # 5, give or take jitter
    assert timed["short"]["steps_per_block"] > timed["long"]["steps_per_block"] >= 1


def _python(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )


def _train(dataset, initial, out: Path, trial: dict, hogs: int = 0) -> subprocess.Popen:
    return _python(TRAIN, dataset, initial, out, json.dumps(trial), hogs)


def _run(tiny_dataset, initial, folder: Path, beside_slowed: bool) -> list[dict]:
    """Train adam (and, beside it, an sgd trial slowed on purpose), time the steps alone, return the rows."""
    trials = {"adam": single_trial("adam"), "sgd": single_trial("sgd")}
    dirs = {name: folder / name for name in trials}
    running = [_train(tiny_dataset, initial, dirs["adam"], trials["adam"])]
    if beside_slowed:
        running.append(_train(tiny_dataset, initial, dirs["sgd"], trials["sgd"], hogs=3))
    assert all(p.wait(timeout=600) == 0 for p in running)
    if not beside_slowed:
        assert _train(tiny_dataset, initial, dirs["sgd"], trials["sgd"]).wait(timeout=600) == 0
    histories = [read_json(d / HISTORY_FILE) for d in dirs.values()]
    for h in histories:  # a target this small run reaches, counted by the train step's own rule
        h["time_to_accuracy"] = time_to_accuracy(h["epochs"], targets=(TARGET,))
    model_dirs = json.dumps([str(d) for d in dirs.values()])
    assert _python(STEP_COST, tiny_dataset, initial, model_dirs, folder / "cost").wait(timeout=600) == 0
    cost = read_json(folder / "cost" / STEP_COST_FILE)
    return {r["optimizer"]: r for r in comparison_rows(histories, None, cost)}


def test_a_slowed_neighbour_moves_wall_time_but_not_the_cost(tiny_dataset, tmp_path):
    initial = tmp_path / "initial"
    run_init_model("mlp", seed=0, output_dir=str(initial))
    alone_rows = _run(tiny_dataset, initial, tmp_path / "alone", beside_slowed=False)
    crowded_rows = _run(tiny_dataset, initial, tmp_path / "crowded", beside_slowed=True)
    alone, crowded = alone_rows["adam"], crowded_rows["adam"]

    # Same seed, same data order: the same epochs and steps, and the same epoch reaching the target.
    assert crowded["steps"] == alone["steps"] == 2 * 16  # ceil(1,000 / 64) steps an epoch
    hit_alone, hit_crowded = alone["time_to_accuracy"][f"{TARGET:g}"], crowded["time_to_accuracy"][f"{TARGET:g}"]
    assert hit_alone["epoch"] == hit_crowded["epoch"] and hit_alone["steps"] == hit_crowded["steps"]
    # The wall time moves with the neighbour...
    assert crowded["train_seconds"] > 1.5 * alone["train_seconds"]
    assert hit_crowded["seconds"] > 1.5 * hit_alone["seconds"]
    # ...the per-step cost and what it prices stay within noise. Two timings a minute apart on a shared VM differ
    # by up to 1.5x whatever runs beside them (its CPU speed drifts), so each is read against the other optimizer
    # timed in the same interleaved rounds: drift moves both alike, a neighbour would move only its own trial's.
    for key in ("step_seconds", "cost_seconds"):
        relative = [rows["adam"][key] / rows["sgd"][key] for rows in (alone_rows, crowded_rows)]
        assert relative[1] == pytest.approx(relative[0], rel=0.3), key
    assert hit_crowded["cost_seconds"] / crowded["step_seconds"] == pytest.approx(hit_alone["steps"])


def test_every_variant_is_timed_once_on_the_lowest_seed(tiny_dataset, tmp_path):
    """Two seeds of two variants: one figure per variant, from the settings the trials trained with."""
    initial = tmp_path / "initial"
    dirs = []
    for seed in (0, 1):
        run_init_model("mlp", seed=seed, output_dir=str(initial))
        for name, trial in (("sgd", single_trial("sgd", seed, batch_size=32)), ("fast", single_trial("adam", seed))):
            dirs.append(tmp_path / f"{name}{seed}")
            dirs[-1].mkdir()
            history = {**trial, "variant": name, "batch_size": trial["batch_size"], "params": trial["params"]}
            (dirs[-1] / HISTORY_FILE).write_text(json.dumps(history))
    result = run_step_cost(str(tiny_dataset), str(initial), [str(d) for d in dirs], str(tmp_path / "cost"))
    assert read_json(tmp_path / "cost" / STEP_COST_FILE) == result
    assert list(result["variants"]) == ["sgd", "fast"]
    assert result["variants"]["sgd"]["batch_size"] == 32 and result["variants"]["fast"]["optimizer"] == "adam"
    assert all(v["seconds_per_step"] > 0 and v["rounds"] >= MIN_ROUNDS for v in result["variants"].values())
    assert "interleaved rounds" in result["method"] and result["device"] == "CPU"
