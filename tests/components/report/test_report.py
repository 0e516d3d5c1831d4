"""The report step on realistic inputs: six optimizers over three seeds, one of them diverged on one seed,
one diverged on all, predictions on the genuine MNIST test labels.

The histories and the evaluation summary are synthetic dicts shaped exactly as
the train and evaluate steps write them (docs/artifacts.md); the per-example
predictions are the genuine test labels with errors placed at the "hardest"
examples, so that two good optimizers mostly err on the same digits, as real
models do. `realistic_run` is shared with the browser and trend tests.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

from optbench.components.report.kfp_ui import best_confusion_matrix, metric_name, scalar_metrics
from optbench.components.report.report import build_report, format_table, run_report
from optbench.components.results.row import SCALAR_COLUMNS, fmt_time
from optbench.components.shared import datasets
from optbench.components.shared import predictions as preds
from optbench.components.shared.schema import (
    COMPARISON_JSON,
    EVAL_SUMMARY_FILE,
    HISTORY_FILE,
    PREDICTIONS_FILE,
    REPORT_HTML,
    REPORT_MD,
    STATS_FILE,
    STEP_COST_FILE,
)

NAN = float("nan")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIST_KEYS = (
    "val_accuracy",
    "val_loss",
    "train_accuracy",
    "train_loss",
    "epoch_seconds",
    "elapsed_seconds",
    "elapsed_cost_seconds",
    "val_accuracy_std",
    "val_loss_std",
)
# What the lead's contract asks comparison.json to carry for every variant.
REQUIRED_KEYS = (
    set(SCALAR_COLUMNS)
    | set(LIST_KEYS)
    | {"seeds", "per_seed", "time_to_accuracy", "per_label_accuracy", "confusion_matrix", "failed_thresholds"}
)
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


@pytest.fixture(scope="session")
def labels(real_digits) -> np.ndarray:
    """The genuine labels of MNIST's 10,000 test digits."""
    return real_digits[1].astype(np.int64)


@pytest.fixture(scope="module")
def inputs(labels):
    return realistic_run(labels)


@pytest.fixture(scope="module")
def report(tmp_path_factory, inputs) -> tuple[list[dict], Path]:
    histories, summary, stats, predictions = inputs
    out = tmp_path_factory.mktemp("run") / "report"
    return build_report(
        histories, summary, stats, SETTINGS, str(out), predictions=predictions, step_cost=STEP_COST
    ), out


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["optimizer"]: r for r in rows}


def test_one_row_per_variant_ranked_diverged_last(report):
    rows, _ = report
    assert [r["optimizer"] for r in rows] == ["adam", "rmsprop", "momentum", "sgd", "adagrad", "adadelta"]
    assert [r["status"] for r in rows] == ["ok", "ok", "partial", "ok", "ok", "diverged"]
    momentum, adadelta = by_name(rows)["momentum"], by_name(rows)["adadelta"]
    assert (momentum["seeds"], momentum["seeds_ok"], momentum["diverged_seeds"]) == ([0, 1, 2], 2, [2])
    assert momentum["diverged_at_epoch"] == 3 and adadelta["diverged_at_epoch"] == 2
    assert all(r["seeds_total"] == 3 for r in rows)


def test_seed_aggregates_mean_sd_and_t_interval(report):
    adam = by_name(report[0])["adam"]
    accs = [0.9890, 0.9880, 0.9885]
    mean, sd = np.mean(accs), np.std(accs, ddof=1)
    half = student_t.ppf(0.975, 2) * sd / math.sqrt(3)  # 4.30 sd/sqrt(3): 3 seeds give a wide interval
    assert adam["test_accuracy"] == pytest.approx(mean, abs=1e-9)
    assert adam["test_accuracy_std"] == pytest.approx(sd, abs=1e-9)
    assert (adam["test_accuracy_ci_low"], adam["test_accuracy_ci_high"]) == (
        pytest.approx(mean - half, abs=1e-9),
        pytest.approx(mean + half, abs=1e-9),
    )
    assert [p["test_accuracy"] for p in adam["per_seed"]] == pytest.approx(accs, abs=1e-9)
    seconds = [67.0 * 6 * (1 + 0.01 * s) for s in SEEDS]
    assert adam["train_seconds"] == pytest.approx(np.mean(seconds))
    assert adam["train_seconds_std"] == pytest.approx(np.std(seconds, ddof=1))


def test_costs_are_steps_times_the_measured_step_and_wall_time_stays_as_wall_time(report):
    rows, out = report
    adam, sgd, momentum = (by_name(rows)[k] for k in ("adam", "sgd", "momentum"))
    assert adam["steps"] == EPOCHS * STEPS_PER_EPOCH and adam["step_seconds"] == 0.030
    assert adam["cost_seconds"] == pytest.approx(EPOCHS * STEPS_PER_EPOCH * 0.030)
    assert adam["cost_seconds_std"] == 0.0  # every seed took the same steps: no spread in cost
    assert [p["cost_seconds"] for p in adam["per_seed"]] == pytest.approx([EPOCHS * STEPS_PER_EPOCH * 0.030] * 3)
    assert adam["elapsed_cost_seconds"] == pytest.approx([e * STEPS_PER_EPOCH * 0.030 for e in range(1, 7)])
    # Wall time (67 s vs 62 s an epoch) and cost (0.030 vs 0.024 s a step) are separate figures.
    assert adam["train_seconds"] > sgd["train_seconds"] and adam["cost_seconds"] > sgd["cost_seconds"]
    assert momentum["per_seed"][2]["diverged"] and momentum["steps"] == EPOCHS * STEPS_PER_EPOCH  # over seeds 0, 1
    # adam reached 0.98 at epoch 4 on seed 0 and epoch 3 on seeds 1 and 2.
    hit = adam["time_to_accuracy"]["0.98"]
    assert hit["epoch"] == pytest.approx(10 / 3) and hit["steps"] == pytest.approx(10 / 3 * STEPS_PER_EPOCH)
    assert hit["cost_seconds"] == pytest.approx(10 / 3 * STEPS_PER_EPOCH * 0.030)
    md = (out / "report.md").read_text()
    cost = md.split("## Cost: time to accuracy and memory")[1].split("## ")[0]
    assert "steps times the optimizer's per-step cost (median over 15 interleaved rounds)" in cost
    assert "| Total cost (m:ss) | Per step (ms) | Wall time, shared machine (m:ss) |" in cost
    assert f"| {fmt_time(adam['cost_seconds'])} | 30 | {fmt_time(adam['train_seconds'])} |" in cost


def test_article_columns_are_seed_means(report):
    adam = by_name(report[0])["adam"]
    curve = VARIANTS["adam"][3]
    assert adam["epochs"] == EPOCHS
    assert adam["val_accuracy"] == pytest.approx(curve)  # the seed offsets -4e-4, 0, +4e-4 cancel out
    assert adam["val_accuracy_epoch_1"] == pytest.approx(curve[0])
    assert adam["val_accuracy_epoch_5"] == pytest.approx(curve[4])
    assert adam["val_accuracy_last"] == pytest.approx(curve[5])
    assert adam["val_accuracy_std"][0] == pytest.approx(0.0004)
    assert adam["elapsed_seconds"][-1] == pytest.approx(adam["train_seconds"])


def test_diverged_trials_are_never_used_as_numbers(report):
    rows, _ = report
    momentum, adadelta = by_name(rows)["momentum"], by_name(rows)["adadelta"]
    # momentum's seed 2 is out of every figure: its mean is over seeds 0 and 1.
    assert momentum["test_accuracy"] == pytest.approx((0.9750 + 0.9741) / 2)
    assert momentum["per_seed"][2]["diverged"] and momentum["per_seed"][2]["test_accuracy"] is None
    assert momentum["blessed"] is False  # its diverged seed is not blessed
    # adadelta's summary says accuracy 0.098 (every NaN prediction read as class 0); the report refuses it.
    assert adadelta["test_accuracy"] is None and adadelta["test_loss"] is None
    assert adadelta["epochs"] == 0 and adadelta["val_accuracy"] == [] and adadelta["confusion_matrix"] is None
    assert adadelta["p_vs_winner"] is None


def test_significance_finds_no_winner_between_two_equals(report):
    rows, out = report
    sig = strict_json((out / "significance.json").read_text())
    assert sig["winner"] == "adam" and sig["winner_significant"] is False
    comparisons = {c["other"]: c for c in sig["comparisons"]}
    assert set(comparisons) == {"rmsprop", "momentum", "sgd", "adagrad"}  # adadelta diverged: not tested
    assert all(c["test"] == "paired-bootstrap" for c in comparisons.values())
    assert comparisons["momentum"]["seeds"] == [0, 1]  # paired on the seeds both have
    assert comparisons["rmsprop"]["significant"] is False and comparisons["rmsprop"]["p_holm"] > 0.05
    assert comparisons["rmsprop"]["ci_low"] < 0 < comparisons["rmsprop"]["ci_high"]
    for name in ("momentum", "sgd", "adagrad"):
        assert comparisons[name]["significant"] is True and comparisons[name]["ci_low"] > 0
    assert comparisons["sgd"]["difference"] == pytest.approx(0.9885 - 0.9702333333, abs=1e-6)
    adam = by_name(rows)["adam"]
    assert adam["winner"] is False and by_name(rows)["sgd"]["significant_vs_winner"] is True


def test_verdict_says_no_significant_difference(report):
    _, out = report
    verdict = (out / "report.md").read_text().split("\n\n")[1]
    assert verdict.startswith("On MNIST: adam has the best test accuracy, 0.9885 (95% CI ")
    assert "0.0001 ahead of rmsprop (0.9884)" in verdict
    assert (
        "but there is no significant difference between adam and rmsprop (rmsprop: difference +0.0001, "
        "95% CI [-0." in verdict
    )
    assert (
        "; paired bootstrap over seeds and examples, alpha 0.05): no single winner. "
        "adam is significantly better than momentum, sgd and adagrad." in verdict
    )
    # adam: 0.98 at epoch 4 on seed 0 (0.9797), epoch 3 on seeds 1 and 2; rmsprop only at epoch 4.
    assert (
        "Cheapest to converge: adam reached 0.98 validation accuracy first, after 1:24 of training steps on "
        "average (epoch 3.33; steps times each optimizer's per-step cost, timed alone)." in verdict
    )
    assert "adadelta diverged at epoch 2 (non-finite loss) and is left out of the comparison." in verdict
    assert "momentum diverged on 1 of 3 seeds (seed 2 at epoch 3); its figures are over the other 2." in verdict
    assert (
        "Not blessed (test accuracy at least 0.95 and at most 0.01 below sgd): momentum, adagrad and adadelta."
        in verdict
    )


def test_a_clear_winner_is_named(labels, tmp_path):
    variants = {k: VARIANTS[k] for k in ("adam", "sgd", "adagrad")}
    histories, summary, stats, predictions = realistic_run(labels, variants=variants)
    rows = build_report(histories, summary, stats, {}, str(tmp_path), predictions=predictions)
    assert by_name(rows)["adam"]["winner"] is True
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert verdict.startswith("On MNIST: adam wins: test accuracy 0.9885 (95% CI ")
    assert (
        "0.0183 ahead of the runner-up sgd (0.9702); its lead over every other optimizer is significant "
        "(paired bootstrap over seeds and examples; largest Holm-adjusted p = 0.001, alpha 0.05)." in verdict
    )


def test_one_seed_uses_mcnemar_and_shows_no_intervals(labels, tmp_path):
    histories, summary, stats, predictions = realistic_run(labels, seeds=(0,))
    rows = build_report(histories, summary, stats, {}, str(tmp_path), predictions=predictions)
    assert all(r["test_accuracy_ci_low"] is None and r["test_accuracy_std"] is None for r in rows)
    sig = json.loads((tmp_path / "significance.json").read_text())
    assert {c["test"] for c in sig["comparisons"]} == {"mcnemar-exact"}
    assert all(c["discordant"][0] > c["discordant"][1] for c in sig["comparisons"] if c["other"] != "rmsprop")
    md = (tmp_path / "report.md").read_text()
    metrics = md.split("## Test metrics (TFMA)")[1].split("## ")[0]
    assert "| Optimizer | Seeds | Test accuracy | Test loss | Top-3 accuracy |" in metrics and "CI" not in metrics
    assert "exact McNemar test" in md
    # No momentum in the list: with one seed, its only seed trained fine.
    assert "| momentum | 1 | 0.9750 |" in md


def test_lr_sweep_shows_default_and_tuned(labels, tmp_path):
    sweep = []
    for lr, curve, acc in (
        (0.003, [0.95, 0.97, 0.98, 0.985, 0.988, 0.9905], 0.9901),
        (0.01, [0.90, 0.93, 0.94, 0.95, 0.955, 0.96], 0.9580),
    ):
        for seed in SEEDS:
            h = history(f"adam lr={lr:g}", seed, "adam", lr, 2.0, curve, 67.0, lr_sweep=True)
            h["_test_accuracy"] = acc
            sweep.append(h)
    variants = {k: VARIANTS[k] for k in ("adam", "sgd")}
    histories, summary, stats, predictions = realistic_run(labels, variants=variants, extra=sweep)
    rows = build_report(histories, summary, stats, {}, str(tmp_path), predictions=predictions)
    named = by_name(rows)
    assert named["adam lr=0.003"]["tuned"] is True and named["adam lr=0.003"]["family"] == "adam"
    assert not named["adam"]["tuned"] and not named["adam lr=0.01"]["tuned"]
    sig = json.loads((tmp_path / "significance.json").read_text())
    assert sig["winner"] == "adam lr=0.003"
    assert {c["other"] for c in sig["comparisons"]} == {"adam", "sgd"}  # the untuned grid point is not a contender
    md = (tmp_path / "report.md").read_text()
    sweep_section = md.split("## Learning-rate sweep")[1].split("## ")[0]
    assert "| adam | 0.001 | default | 0.9890 | 0.9885 | ok |" in sweep_section
    assert "| adam | 0.003 | tuned | 0.9905 | 0.9901 | ok |" in sweep_section
    assert "| adam | 0.01 |  | 0.9600 | 0.9580 | ok |" in sweep_section
    assert "adam lr=0.01" not in md.split("## Learning-rate sweep")[0]  # main tables: contenders only


def test_efficiency_table_time_to_accuracy_and_memory(report):
    _, out = report
    md = (out / "report.md").read_text()
    section = md.split("## Cost")[1].split("## ")[0]
    assert (
        "| Optimizer | Cost to 0.95 | Cost to 0.97 | Cost to 0.98 | Cost to 0.99 | Total cost (m:ss) | Per step (ms) | "
        "Wall time, shared machine (m:ss) | Optimizer state (MiB) | State / parameters |"
    ) in section
    # adam: 844 steps of 30 ms an epoch; 0.98 at epoch 4 on seed 0 and epoch 3 on the others (mean 3.33).
    assert (
        "| adam | 0:25 (ep 1) | 0:51 (ep 2) | 1:24 (ep 3.33) | not reached | 2:32 | 30 | 6:46 | 10.59 | 2x |" in section
    )
    # sgd's seed 0 ends at 0.9696: 0.97 is reached by 2 of 3 seeds, the cost is their mean.
    assert (
        "| sgd | 1:01 (ep 3) | 2:02 (ep 6), 2/3 seeds | not reached | not reached | 2:02 | 24 | 6:16 | 0.00 | 0x |"
        in section
    )
    assert "| adadelta (diverged) | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 10.59 | 2x |" in section


def test_short_run_without_evaluation(tmp_path):
    short = history("sgd", 0, "sgd", 0.01, 0.0, [0.90, 0.93, 0.95], 100 / 3)
    cost = {"variants": {"sgd": {"seconds_per_step": 100 / (3 * STEPS_PER_EPOCH)}}}
    (row,) = build_report([short], {}, STATS, {}, str(tmp_path), step_cost=cost)
    assert row["epochs"] == 3 and row["test_accuracy"] is None and row["blessed"] is None
    assert row["val_accuracy_epoch_5"] is None and row["val_loss_epoch_5"] is None
    assert (row["val_accuracy_last"], row["val_loss_last"]) == (0.95, 0.19)
    md = (tmp_path / "report.md").read_text()
    assert "| sgd | 0.9000 | 0.3500 | n/a | n/a | 0.9500 | 0.1900 | 1:40 |" in md and "Val acc ep3" in md
    assert "No optimizer has usable test metrics; by final validation accuracy the best was sgd (0.9500)." in md
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "accuracy.png",
        "accuracy_time.png",
        "cost.png",
        "loss.png",
    ]  # nothing tested: no error charts


def test_comparison_json_is_strict_with_required_keys(report):
    rows, out = report
    data = strict_json((out / "comparison.json").read_text())
    assert [d["optimizer"] for d in data] == [r["optimizer"] for r in rows]
    for d in data:
        assert d.keys() >= REQUIRED_KEYS, REQUIRED_KEYS - d.keys()
        assert all(isinstance(d[k], list) and len(d[k]) == d["epochs"] for k in LIST_KEYS)
        assert len(d["per_seed"]) == 3


def test_csv_round_trips(report):
    rows, out = report
    with open(out / "comparison.csv", newline="") as f:
        parsed = list(csv.DictReader(f))
    assert list(parsed[0]) == list(SCALAR_COLUMNS)
    for got, row in zip(parsed, rows, strict=True):
        for key in SCALAR_COLUMNS:
            want = row[key]
            if want is None:
                assert got[key] == ""
            elif isinstance(want, (bool, str)):
                assert got[key] == str(want)
            else:
                assert float(got[key]) == want


CHARTS = (
    "accuracy.png",
    "loss.png",
    "accuracy_time.png",
    "cost.png",
    "confusion.png",
    "per_class.png",
    "calibration.png",
)


def test_every_chart_is_a_real_png(report):
    _, out = report
    for name in CHARTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    width, height = struct.unpack(">II", (out / "accuracy.png").read_bytes()[16:24])
    assert (width, height) == (770, 495)


def test_html_is_self_contained(report):
    _, out = report
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # settings are escaped, not executed
    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", html)
    assert len(srcs) == html.count("<img") == len(CHARTS)
    for src, name in zip(srcs, CHARTS):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True) == (out / name).read_bytes()
    assert "there is no significant difference between adam and rmsprop" in html


def test_markdown_tables_settings_and_figures(report):
    _, out = report
    md = (out / "report.md").read_text()
    assert md.startswith("# Optimizer comparison: cnn (1,387,594 parameters) on MNIST (suite seed-004)")
    assert "| Optimizer | Val acc ep1 | Val loss ep1 | Val acc ep5 | Val loss ep5 | Val acc ep6 | Val loss ep6 |" in md
    assert "| adam | 0.9612 | 0.1532 | 0.9871 | 0.0703 | 0.9890 | 0.0642 | 2:32 |" in md
    # momentum's means are over seeds 0 and 1 (offsets -4e-4 and 0), its seed 2 having diverged.
    assert "| momentum (diverged 1/3) | 0.9398 | 0.2222 | 0.9739 | 0.1130 | 0.9758 | 0.1070 | 2:12 |" in md
    assert "| adadelta (diverged) | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in md
    assert (
        "| Optimizer | Seeds | Test accuracy | 95% CI | Test loss | 95% CI | Top-3 accuracy | Calibration error | "
        "Diff vs baseline | Blessed | p vs best (Holm) |"
    ) in md
    assert (
        "| adam | 3 | 0.9885 | [0.9873, 0.9897] | 0.0488 | [0.0456, 0.0519] | 0.9975 | 0.0046 | +0.0183 | yes "
        "| best |" in md
    )
    # The smallest bootstrap p is 2/4001; Holm multiplies it by the four comparisons.
    assert re.search(r"\| sgd \| 3 \| 0\.9702 \| .* \| baseline \| yes \| 0\.0020 \|", md)
    assert "| adadelta (diverged) | 0 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | no | n/a |" in md
    assert "Baseline: sgd." in md and "Minimum test accuracy: 0.95." in md
    assert "| train | 54,000 | 5,330-6,070 |" in md and "| test | 10,000 | 980-1,135 |" in md
    assert "| versions.tensorflow | 2.21.0 |" in md and "| seeds | 0, 1, 2 |" in md  # nested settings flattened
    assert "| note | &lt;script&gt;alert(1)&lt;/script&gt; \\| pipe |" in md  # no raw HTML, table intact
    assert "Trained on: CPU." in md
    for name in CHARTS:
        assert f"]({name})" in md
    assert "nan" not in md.lower()


def test_format_table_lists_every_variant_with_its_interval(report):
    rows, _ = report
    lines = format_table(rows).splitlines()
    assert len(lines) == 2 + len(rows) and len({len(line) for line in lines}) == 1  # fixed width
    assert "Test acc" in lines[0] and "95% CI" in lines[0] and "Test loss" in lines[0]
    for line, row in zip(lines[2:], rows):
        assert line.startswith(row["optimizer"])
    assert "0.9885" in lines[2] and "[0.9873, 0.9897]" in lines[2]


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


def test_the_report_step_reads_its_artifacts_nan_tokens_included(tmp_path, inputs):
    histories, summary, stats, predictions = inputs
    broken = json.loads(json.dumps(histories[0]))
    broken["epochs"][2]["val_loss"] = NAN  # Python's json writes NaN as a bare token: it must still count
    dataset, model_dirs, evaluation, cost = write_artifacts(
        tmp_path, [broken, histories[3]], summary, stats, predictions
    )
    events = Path(model_dirs[1]) / "tensorboard" / "validation" / "events.out.tfevents.1.host"
    events.parent.mkdir(parents=True)
    events.write_bytes(b"\x00event bytes")
    rows = run_report(
        dataset,
        model_dirs,
        evaluation,
        cost,
        {},
        str(tmp_path / "report"),
        markdown=str(tmp_path / "md"),
        html=str(tmp_path / "html"),
    )
    strict_json((tmp_path / "report" / COMPARISON_JSON).read_text())
    assert by_name(rows)["adam"]["status"] == "diverged"  # the NaN loss counts as divergence
    assert by_name(rows)["rmsprop"]["status"] == "ok"
    assert by_name(rows)["rmsprop"]["step_seconds"] == STEP_COST["variants"]["rmsprop"]["seconds_per_step"]
    assert (tmp_path / "md").read_text() == (tmp_path / "report" / REPORT_MD).read_text()
    assert (tmp_path / "html").read_text() == (tmp_path / "report" / REPORT_HTML).read_text()
    # every trial's TensorBoard logs under one folder, by trial; a model folder without them is no error
    gathered = tmp_path / "report" / "tensorboard"
    assert [p.relative_to(gathered).as_posix() for p in gathered.rglob("*") if p.is_file()] == [
        f"{histories[3]['trial']}/validation/{events.name}"
    ]


def test_predictions_named_but_missing_is_an_error(inputs, tmp_path):
    dataset, model_dirs, evaluation, cost = write_artifacts(tmp_path, *inputs)
    (Path(evaluation) / PREDICTIONS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=PREDICTIONS_FILE):
        run_report(dataset, model_dirs, evaluation, cost, {}, str(tmp_path / "report"))
    assert not (tmp_path / "report").exists(), "nothing is written for a report that cannot be built"


def test_summary_without_predictions_names_no_winner(inputs, tmp_path):
    histories, summary, stats, _ = inputs
    build_report(histories, summary, stats, {}, str(tmp_path))
    assert json.loads((tmp_path / "significance.json").read_text()) is None
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert "significance not tested (no paired per-example predictions), so no winner is declared" in verdict


@pytest.mark.parametrize(
    "histories, message",
    [
        ([], "no training histories"),
        ([history("adam", 0, "adam", 0.001, 2.0, [0.9], 1.0)] * 2, "more than one history for adam seed 0"),
        ([{"epochs": []}], "non-empty 'variant'"),
    ],
)
def test_bad_input_is_refused_before_writing(tmp_path, histories, message):
    with pytest.raises(ValueError, match=message):
        build_report(histories, {}, STATS, {}, str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()


def test_failed_write_leaves_no_finished_page(tmp_path, monkeypatch, inputs):
    histories, summary, stats, _ = inputs
    out = tmp_path / "report"
    build_report(histories[:3], summary, stats, {}, str(out))
    assert (out / "report.html").exists()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("optbench.components.report.report.write_json_atomic", fail)
    with pytest.raises(OSError):
        build_report(histories[:6], summary, stats, {}, str(out))
    assert not (out / "report.html").exists()


def test_kfp_ui_metrics_and_confusion_matrix(report):
    rows, _ = report
    metrics = scalar_metrics(rows)
    adam = by_name(rows)["adam"]
    assert metrics["adam_test_accuracy"] == adam["test_accuracy"]
    assert metrics["adam_test_accuracy_ci_low"] == adam["test_accuracy_ci_low"]
    assert metrics["sgd_train_seconds"] == by_name(rows)["sgd"]["train_seconds"]
    assert metrics["sgd_cost_seconds"] == by_name(rows)["sgd"]["cost_seconds"]
    assert metrics["sgd_step_seconds"] == 0.024
    assert not any(k.startswith("adadelta") for k in metrics)  # diverged: no numbers
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metric_name("sgd bs=1024", "test_loss") == "sgdbs1024_test_loss"
    best = best_confusion_matrix(rows, list(datasets.FASHION_MNIST.class_names))
    assert best["variant"] == "adam" and best["categories"][9] == "Ankle boot"
    assert sum(map(sum, best["matrix"])) == 3 * 10_000  # three seeds' passes over the test split


def test_imports_neither_tensorflow_nor_kfp():
    code = (
        "import sys, optbench.components.report.report, optbench.components.report.kfp_ui, "
        "optbench.components.history.changes, optbench.components.history.trends; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'kfp', 'keras')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


def test_a_stopped_trial_is_shown_as_stopped_and_never_scored(labels, tmp_path):
    histories, summary, stats, predictions = realistic_run(labels)
    for h in histories:
        if h["variant"] == "adagrad":  # the median stopping rule stopped it after epoch 3 on every seed
            h.update(status="stopped", stopped_at_epoch=3, stopped_below_median=0.97, epochs=h["epochs"][:3])
    rows = build_report(histories, summary, stats, {}, str(tmp_path), predictions=predictions, step_cost=STEP_COST)
    adagrad = by_name(rows)["adagrad"]
    assert (adagrad["status"], adagrad["stopped_at_epoch"], adagrad["stopped_seeds"]) == ("stopped", 3, [0, 1, 2])
    assert adagrad["epochs"] == 3 and adagrad["steps"] == 3 * STEPS_PER_EPOCH  # what it did cost
    assert adagrad["test_accuracy"] is None and adagrad["blessed"] is None and adagrad["p_vs_winner"] is None
    sig = json.loads((tmp_path / "significance.json").read_text())
    assert {c["other"] for c in sig["comparisons"]} == {"rmsprop", "momentum", "sgd"}  # never a loser it did not finish
    md = (tmp_path / "report.md").read_text()
    assert (
        "Stopped early by the median stopping rule (validation accuracy below the median of the other trials at "
        "the same epoch): adagrad at epoch 3 (3 of 3 seeds); a stopped trial is not scored" in md
    )
    assert "| adagrad (stopped at ep 3) |" in md
    assert "No test metrics for" not in md


def test_trials_are_exported_to_mlflow_and_read_back_with_its_client(tmp_path, inputs):
    from mlflow import MlflowClient

    histories, summary, stats, predictions = inputs
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # a real store, the one MLflow recommends
    rows = run_report(
        *write_artifacts(tmp_path, histories, summary, stats, predictions),
        SETTINGS,
        str(tmp_path / "report"),
        mlflow_uri=uri,
    )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"optbench-{SETTINGS['suite']}")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent = runs.pop(SETTINGS["run_id"])
    assert sorted(runs) == sorted(h["trial"] for h in histories)
    assert parent.data.params["suite"] == SETTINGS["suite"] and parent.data.params["epochs"] == str(EPOCHS)
    tested = {s["trial"]: s for r in rows for s in r["per_seed"]}
    for history in histories:
        run = runs[history["trial"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["optimizer"] == history["optimizer"]
        assert float(run.data.params["learning_rate"]) == history["learning_rate"]
        curve = client.get_metric_history(run.info.run_id, "val_accuracy")
        finite = [e for e in history["epochs"] if e["val_accuracy"] is not None and math.isfinite(e["val_accuracy"])]
        assert [(m.step, m.value) for m in curve] == [(e["epoch"], e["val_accuracy"]) for e in finite]
        if tested[history["trial"]]["test_accuracy"] is not None:
            assert run.data.metrics["test_accuracy"] == tested[history["trial"]]["test_accuracy"]
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{REPORT_HTML}", f"report/{COMPARISON_JSON}"} <= attached
    assert "exported: run" in (tmp_path / "report" / REPORT_MD).read_text()


def test_a_tracking_store_that_is_down_costs_the_run_nothing_and_the_report_says_so(tmp_path, inputs, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    rows = run_report(*write_artifacts(tmp_path, *inputs), SETTINGS, str(tmp_path / "report"), mlflow_uri=uri)
    assert rows and (tmp_path / "report" / REPORT_HTML).exists()
    markdown = (tmp_path / "report" / REPORT_MD).read_text()
    assert uri in markdown and "failed:" in markdown
    assert any("MLflow export to" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
