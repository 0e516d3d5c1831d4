"""The report's inputs on realistic numbers: six optimizers over three seeds, one of them diverged on one seed,
one diverged on all, predictions on the genuine MNIST test labels.

The histories and the evaluation summary are synthetic dicts shaped exactly as
the train and evaluate steps write them (docs/artifacts.md); the per-example
predictions are the genuine test labels with errors placed at the "hardest"
examples, so that two good optimizers mostly err on the same digits, as real
models do. The tests of the report, the results, the history and the trends build on `realistic_run`
(`make_run`: a whole run folder); tests/conftest.py serves the standard run and its report as the fixtures
`labels`, `inputs` and `report`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from optbench.components.report.report import build_report
from optbench.components.shared import predictions as preds
from optbench.components.shared.files import write_json_atomic
from optbench.components.shared.schema import (
    EVAL_SUMMARY_FILE,
    HISTORY_FILE,
    PREDICTIONS_FILE,
    STATS_FILE,
    STEP_COST_FILE,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TARGETS = (0.95, 0.97, 0.98, 0.99)
PARAMETER_BYTES = 5_550_376
SEEDS = (0, 1, 2)
EPOCHS = 6

# variant -> (optimizer, learning rate, state ratio, validation-accuracy curve of seed 0, seconds per epoch,
#             test accuracy per seed (None: that seed diverged), epoch of divergence)
VARIANTS = {
    "adam": (
        "adam",
        0.001,
        2.0,
        [0.9612, 0.9750, 0.9801, 0.9850, 0.9871, 0.9890],
        67.0,
        [0.9890, 0.9880, 0.9885],
        None,
    ),
    "rmsprop": (
        "rmsprop",
        0.001,
        1.0,
        [0.9590, 0.9741, 0.9790, 0.9841, 0.9866, 0.9884],
        64.0,
        [0.9885, 0.9889, 0.9878],
        None,
    ),
    "momentum": (
        "momentum",
        0.01,
        1.0,
        [0.9400, 0.9600, 0.9690, 0.9720, 0.9741, 0.9760],
        66.0,
        [0.9750, 0.9741, None],
        3,
    ),
    "sgd": ("sgd", 0.01, 0.0, [0.9100, 0.9400, 0.9530, 0.9610, 0.9660, 0.9700], 62.0, [0.9702, 0.9695, 0.9710], None),
    "adagrad": (
        "adagrad",
        0.001,
        1.0,
        [0.8803, 0.9102, 0.9255, 0.9350, 0.9411, 0.9460],
        100.0,
        [0.9460, 0.9475, 0.9452],
        None,
    ),
    "adadelta": ("adadelta", 1.0, 2.0, [0.9000, 0.0980, 0.0980, 0.0980, 0.0980, 0.0980], 70.0, [None, None, None], 2),
}
THRESHOLDS = {"min_accuracy": 0.95, "max_drop_vs_baseline": 0.01}
# The step-cost step's step_cost.json: seconds per training step, in an order unlike the wall times above.
STEP_COST = {
    "method": "median over 15 interleaved rounds",
    "variants": {
        name: {"seconds_per_step": seconds, "batch_size": 64}
        for name, seconds in {
            "adam": 0.030,
            "rmsprop": 0.028,
            "momentum": 0.026,
            "sgd": 0.024,
            "adagrad": 0.027,
            "adadelta": 0.031,
        }.items()
    },
}
STEPS_PER_EPOCH = 844  # ceil(54,000 / 64): the last, short batch is a step too
STATS = {
    "source": {"kind": "idx", "uri": "/shared/data/mnist", "description": "MNIST (IDX files from /shared/data/mnist)"},
    "dataset": {"name": "mnist", "title": "MNIST", "class_names": [str(d) for d in range(10)]},
    "splits": {
        "train": {"count": 54000, "per_class": {"0": 5330, "1": 6070}},
        "validation": {"count": 6000, "per_class": {"0": 593, "1": 672}},
        "test": {"count": 10000, "per_class": {"0": 980, "1": 1135}},
    },
    "validation_fraction": 0.1,
    "train_limit": None,
    "seed": 0,
}
SETTINGS = {
    "run_id": "r-42",
    "suite": "seed-004",
    "model_name": "cnn",
    "epochs": EPOCHS,
    "batch_size": 64,
    "seeds": list(SEEDS),
    "data_source": "auto",
    "device": "CPU",
    "versions": {"tensorflow": "2.21.0", "tensorflow-model-analysis": "0.52.0"},
    "note": "<script>alert(1)</script> | pipe",
}


CHARTS = (
    "accuracy.png",
    "loss.png",
    "accuracy_time.png",
    "cost.png",
    "confusion.png",
    "per_class.png",
    "calibration.png",
)


def trial_id(variant: str, seed: int) -> str:
    return f"{variant.replace(' ', '').replace('=', '')}.s{seed}"


def history(
    variant: str,
    seed: int,
    optimizer: str,
    lr: float,
    ratio: float,
    val_acc: list[float],
    epoch_seconds: float,
    diverged_at: int | None = None,
    lr_sweep: bool = False,
) -> dict:
    """A history.json as the train step writes it; a diverged one has null losses from `diverged_at` on."""
    epochs, elapsed, reached = [], 0.0, {f"{t:g}": None for t in TARGETS}
    for i, acc in enumerate(val_acc, start=1):
        bad = diverged_at is not None and i >= diverged_at
        seconds = epoch_seconds * (1 + 0.01 * seed)
        elapsed += seconds
        loss = None if bad else round(0.03 + (1 - acc) * 3.2 - 0.001 * seed, 4)
        epochs.append(
            {
                "epoch": i,
                "loss": None if bad else round(loss * 1.1, 4),
                "accuracy": round(acc - 0.01, 4),
                "val_loss": loss,
                "val_accuracy": None if bad else acc,
                "seconds": seconds,
                "examples_per_second": 54000 / seconds,
            }
        )
        for t in TARGETS:
            if not bad and reached[f"{t:g}"] is None and acc >= t:
                reached[f"{t:g}"] = {"epoch": i, "seconds": elapsed}
    return {
        "trial": trial_id(variant, seed),
        "variant": variant,
        "lr_sweep": lr_sweep,
        "optimizer": optimizer,
        "optimizer_config": {"class_name": optimizer.title(), "learning_rate": lr},
        "learning_rate": lr,
        "model": "cnn",
        "batch_size": 64,
        "seed": seed,
        "device": "CPU",
        "mixed_precision": False,
        "xla": False,
        "status": "diverged" if diverged_at else "ok",
        "diverged_at_epoch": diverged_at,
        "epochs": epochs,
        "train_seconds": elapsed,
        "time_to_accuracy": reached,
        "parameters": 1387594,
        "parameter_bytes": PARAMETER_BYTES,
        "optimizer_state_bytes": int(ratio * PARAMETER_BYTES),
        "optimizer_state_ratio": ratio,
        "train_examples": 54000,
    }


def predicted_classes(labels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """The labels with round((1 - accuracy) * N) errors, placed mostly on the same "hard" examples for every
    trial (a fixed hardness plus trial noise), each error a wrong digit."""
    n = len(labels)
    hardness = np.random.default_rng(1234).random(n)
    rng = np.random.default_rng(seed)
    wrong = np.argsort(-(hardness + 0.35 * rng.random(n)))[: round((1 - accuracy) * n)]
    out = labels.astype(np.int16).copy()
    out[wrong] = (labels[wrong] + 1 + rng.integers(0, 9, wrong.size)) % 10
    return out


def model_summary(labels: np.ndarray, predicted: np.ndarray, finite: bool) -> dict:
    """One model's summary.json entry with the numbers TFMA would compute from these predictions."""
    matrix = np.zeros((10, 10), int)
    np.add.at(matrix, (labels, np.where(predicted < 0, 0, predicted)), 1)
    accuracy = float(np.trace(matrix) / len(labels))
    return {
        "example_count": len(labels),
        "accuracy": accuracy,
        "loss": round(0.02 + (1 - accuracy) * 2.5, 6) if finite else None,
        "top3_accuracy": min(1.0, accuracy + 0.009),
        "accuracy_diff_vs_baseline": None,
        "blessed": True,
        "failed_thresholds": [],
        "finite_predictions": finite,
        "macro_auc": None,
        "calibration": {
            "ece": round(0.4 * (1 - accuracy), 6),
            "bins": [
                {"low": 0.8, "high": 0.9, "count": 150, "accuracy": 0.80, "confidence": 0.86},
                {"low": 0.9, "high": 1.0, "count": len(labels) - 150, "accuracy": accuracy + 0.001, "confidence": 0.99},
            ],
        }
        if finite
        else None,
        "per_label_accuracy": {str(d): float(matrix[d, d] / matrix[d].sum()) for d in range(10)},
        "confusion_matrix": matrix.tolist(),
    }


def realistic_run(
    labels: np.ndarray,
    seeds: tuple[int, ...] = SEEDS,
    shift: float = 0.0,
    time_scale: float = 1.0,
    variants: dict | None = None,
    baseline: str = "sgd",
    extra: list[dict] | None = None,
):
    """(histories, summary, stats, predictions) of a run, as the pipeline hands them to the report.

    `shift` moves every accuracy and `time_scale` every duration (a later run of the same suite);
    `extra` adds more histories (with `accuracy` per history under the key "_test_accuracy").
    """
    histories, predicted, test_acc = [], {}, {}
    for variant, (opt, lr, ratio, curve, seconds, per_seed, diverged_at) in (variants or VARIANTS).items():
        for seed in seeds:
            acc = per_seed[seed % len(per_seed)]
            curve_s = [min(0.9999, a + shift + 0.0004 * (seed - 1)) for a in curve]
            h = history(
                variant,
                seed,
                opt,
                lr,
                ratio,
                curve_s,
                seconds * time_scale,
                diverged_at=diverged_at if acc is None else None,
            )
            histories.append(h)
            test_acc[h["trial"]] = None if acc is None else acc + shift
    for h in extra or []:
        test_acc[h["trial"]] = h.pop("_test_accuracy")
        histories.append(h)
    models = {}
    for i, (trial, acc) in enumerate(test_acc.items()):
        if acc is None:  # a NaN model: TFMA's argmax reads every prediction as class 0
            predicted[trial] = np.full(len(labels), preds.NOT_FINITE, np.int16)
            models[trial] = model_summary(labels, predicted[trial], finite=False)
            models[trial]["blessed"] = False
            models[trial]["failed_thresholds"] = ["non-finite outputs (the model diverged)"]
        else:
            predicted[trial] = predicted_classes(labels, acc, seed=i)
            models[trial] = model_summary(labels, predicted[trial], finite=True)
    base = trial_id(baseline, seeds[0])
    for trial, m in models.items():
        if trial != base and base in models:
            m["accuracy_diff_vs_baseline"] = m["accuracy"] - models[base]["accuracy"]
            if m["finite_predictions"] and m["accuracy_diff_vs_baseline"] < -THRESHOLDS["max_drop_vs_baseline"]:
                m["blessed"] = False
                m["failed_thresholds"].append("accuracy against the baseline, beyond the allowed change -0.01")
        if m["finite_predictions"] and m["accuracy"] < THRESHOLDS["min_accuracy"]:
            m["blessed"] = False
            m["failed_thresholds"].append(f"accuracy {m['accuracy']:.4f} is below the minimum 0.95")
    summary = {
        "baseline": base,
        "thresholds": dict(THRESHOLDS),
        "test_examples": len(labels),
        "validation_ok": all(m["blessed"] for m in models.values()),
        "models": models,
        "tfma_seconds": 41.5,
        "calibration": True,
        "auc": False,
        "predictions": PREDICTIONS_FILE,
    }
    return histories, summary, STATS, preds.Predictions(labels.astype(np.int64), predicted)


def strict_json(text: str):
    def refuse(token: str):
        raise ValueError(f"non-strict JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["optimizer"]: r for r in rows}


def write_artifacts(tmp_path: Path, histories: list[dict], summary: dict, stats: dict, predictions) -> tuple:
    """The report step's inputs as the earlier steps leave them: (dataset dir, model dirs, evaluation dir, step-cost
    dir)."""
    dataset, evaluation, cost = tmp_path / "dataset", tmp_path / "evaluation", tmp_path / "step_cost"
    for folder in (dataset, evaluation, cost):
        folder.mkdir()
    (cost / STEP_COST_FILE).write_text(json.dumps(STEP_COST))
    (dataset / STATS_FILE).write_text(json.dumps(stats))
    (evaluation / EVAL_SUMMARY_FILE).write_text(json.dumps({**summary, "predictions": PREDICTIONS_FILE}))
    (evaluation / PREDICTIONS_FILE).write_bytes(preds.to_bytes(predictions))
    model_dirs = []
    for history in histories:
        model_dirs.append(tmp_path / "models" / history["trial"])
        model_dirs[-1].mkdir(parents=True)
        (model_dirs[-1] / HISTORY_FILE).write_text(json.dumps(history))
    return str(dataset), [str(d) for d in model_dirs], str(evaluation), str(cost)


def make_run(
    runs_dir: Path, run_id: str, labels, shift: float, time_scale: float, variants: dict, config: dict
) -> Path:
    """A run folder as optbench/local_run.py leaves it: report/ from the real report step, and run.json."""
    run_dir = runs_dir / run_id
    histories, summary, stats, predictions = realistic_run(
        labels, shift=shift, time_scale=time_scale, variants=variants
    )
    build_report(
        histories, summary, stats, {**SETTINGS, "run_id": run_id}, str(run_dir / "report"), predictions=predictions
    )
    write_json_atomic(
        run_dir / "run.json",
        {
            "run_id": run_id,
            "status": "succeeded",
            "seconds": 900.0 * time_scale,
            "config": config,
            "report": str(run_dir / "report"),
        },
    )
    return run_dir
