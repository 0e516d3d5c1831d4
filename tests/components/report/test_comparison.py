"""The comparison rows of the realistic run: one row per variant, seed aggregates, costs, divergence, sweeps,
stopped trials, and the rows as comparison.json and comparison.csv carry them."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from report_inputs import (
    EPOCHS,
    SEEDS,
    STATS,
    STEP_COST,
    STEPS_PER_EPOCH,
    VARIANTS,
    by_name,
    history,
    realistic_run,
    strict_json,
)
from scipy.stats import t as student_t

from optbench.components.report.report import build_report
from optbench.components.results.row import SCALAR_COLUMNS, fmt_time

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
