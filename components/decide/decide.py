"""The decide step: one look of the group-sequential test (`results.sequential`), and the next round's trials.

Each look's folder holds all that the next one needs, so that no look
retrains or re-scores a trial: the test's record, the predictions of every
trial scored so far, and a copy of each added round's models. The steps
after the last look read the rounds' models from its folder: a pipeline's
inputs are fixed when it is built, and how many rounds train is decided at
run time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from optbench.components.question.suites import for_seed
from optbench.components.results import sequential
from optbench.components.results.significance import ALPHA
from optbench.components.shared.artifacts import split_files
from optbench.components.shared.files import read_json, write_bytes_atomic, write_json_atomic
from optbench.components.shared.predictions import Predictions, load, predict, to_bytes
from optbench.components.shared.schema import (
    HISTORY_FILE,
    ROUND_MODELS_DIR,
    ROUND_PREDICTIONS_FILE,
    SAVED_MODEL_DIR,
    SEQUENTIAL_JSON,
    TEST_SPLIT,
)
from optbench.components.shared.timing import timed


def skip_trial(round_index: int) -> dict:
    """The one item of a round with nothing to train (a ParallelFor needs one): its train task skips at once."""
    return {"trial": f"round-{round_index}-none", "variant": "", "optimizer": "", "seed": -1, "skip": True}


def _correct(record: dict, predictions: Predictions) -> dict[str, dict[int, np.ndarray]]:
    """variant -> seed -> bool [N] for every scored trial of the record."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for trial, info in record["trials"].items():
        if info["scored"]:
            out.setdefault(info["variant"], {})[info["seed"]] = predictions.correct(trial)
    return out


def _first_record(trials: dict[str, dict], predictions: Predictions, plan: dict) -> dict:
    """The record before the first look: the leader is the variant with the best mean test accuracy among those
    whose every trial was scored (one that diverged on a seed is no recommendation), as the verdict picks it."""
    by_variant: dict[str, list[dict]] = {}
    for trial, info in trials.items():
        by_variant.setdefault(info["variant"], []).append({"trial": trial, **info})
    accuracy = {
        v: float(np.mean([predictions.correct(t["trial"]).mean() for t in ts]))
        for v, ts in by_variant.items()
        if all(t["scored"] for t in ts)
    }
    if not accuracy:
        raise ValueError("no variant has every trial scored: nothing to lead the sequential test")
    leader = max(sorted(accuracy), key=lambda v: accuracy[v])
    contenders = [v for v, ts in by_variant.items() if v != leader and any(t["scored"] for t in ts)]
    settings = plan["settings"]
    return sequential.start(leader, contenders, len(plan["seeds"]), settings["max_seeds"], ALPHA, settings["margin"])


@timed("decide")
def run_decide(
    dataset_dir: str, model_dirs: list[str], earlier_dir: str | None, plan: dict, output_dir: str
) -> list[str]:
    """Score the trials of `model_dirs` (the run's own, or the latest round's), make the look, write the folder
    the next look reads (`earlier_dir` is the previous look's; None at the first) and return the next round's
    trials as JSON texts."""
    out = Path(output_dir)
    (out / ROUND_MODELS_DIR).mkdir(parents=True, exist_ok=True)  # the first look's holds none
    if not plan["settings"]["until_decided"]:  # a pipeline built with rounds, run from a form that asks for none
        return [json.dumps(skip_trial(1))]
    record = read_json(Path(earlier_dir) / SEQUENTIAL_JSON) if earlier_dir is not None else None
    if record is not None and record["stopped"]:  # the round before trained nothing: the record stands
        shutil.copytree(str(earlier_dir), out, dirs_exist_ok=True)
        return [json.dumps(skip_trial(record["round"] + 2))]
    histories = {d: read_json(Path(d) / HISTORY_FILE) for d in model_dirs}
    ok = {h["trial"]: str(Path(d) / SAVED_MODEL_DIR) for d, h in histories.items() if h["status"] == "ok"}
    new = predict(ok, split_files(dataset_dir, TEST_SPLIT))
    predicted = dict(new.predicted)
    if earlier_dir is not None:  # what earlier looks scored is read back, never scored again
        predicted = {**load(Path(earlier_dir) / ROUND_PREDICTIONS_FILE).predicted, **predicted}
        shutil.copytree(Path(earlier_dir) / ROUND_MODELS_DIR, out / ROUND_MODELS_DIR, dirs_exist_ok=True)
        for d, h in histories.items():
            shutil.copytree(d, out / ROUND_MODELS_DIR / h["trial"])
    predictions = Predictions(new.labels, predicted)
    round_index = 0 if record is None else record["round"] + 1
    trials = {
        h["trial"]: {
            "variant": h["variant"],
            "seed": h["seed"],
            "round": round_index,
            "scored": h["trial"] in ok and predictions.finite(h["trial"]),
        }
        for h in histories.values()
    }
    if record is None:
        record = _first_record(trials, predictions, plan) | {"trials": {}}
    record["trials"].update(trials)
    record["round"] = round_index
    sequential.advance(record, _correct(record, predictions), len(plan["seeds"]) + round_index)
    write_bytes_atomic(out / ROUND_PREDICTIONS_FILE, to_bytes(predictions))
    write_json_atomic(out / SEQUENTIAL_JSON, record)
    variants = sequential.to_train(record)
    if not variants:
        return [json.dumps(skip_trial(round_index + 1))]
    seed = plan["round_seeds"][round_index]
    pool = plan["trials"] + plan["confirm_pool"]
    return [json.dumps(for_seed(next(t for t in pool if t["variant"] == v), seed)) for v in variants]
