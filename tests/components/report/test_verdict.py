"""The verdict: who won and whether the evidence says so (the candidate's significance against every other
contender), and the paragraph that says it, on the realistic run and on the thresholds a suite sets."""

from __future__ import annotations

import json

import pytest
from report_inputs import VARIANTS, by_name, realistic_run, strict_json

from optbench.components.question import suites
from optbench.components.report.report import build_report


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
    rmsprop = next(r for r in report[0] if r["optimizer"] == "rmsprop")
    assert (
        f"undecided: this run could only detect differences of {rmsprop['detectable_vs_winner']:.3f} or more; "
        "paired bootstrap over seeds and examples, alpha 0.05, detectable at 80% power): no single winner. "
        "adam is significantly better than momentum, sgd and adagrad." in verdict
    )
    # the rmsprop's interval is about +-0.002 over 3 seeds of 10,000 digits: it cannot see a difference of 0.001
    assert 0.001 < rmsprop["detectable_vs_winner"] < 0.02
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


def test_summary_without_predictions_names_no_winner(inputs, tmp_path):
    histories, summary, stats, _ = inputs
    build_report(histories, summary, stats, {}, str(tmp_path))
    assert json.loads((tmp_path / "significance.json").read_text()) is None
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert "significance not tested (no paired per-example predictions), so no winner is declared" in verdict


def test_blessing_excludes_chance_and_far_below_the_baseline_unless_a_suite_says_otherwise():
    from optbench.components.report.verdict import _thresholds_words

    default = suites.validate({"optimizers": ["sgd", "adadelta"]})["thresholds"]
    assert default == suites.DEFAULT_THRESHOLDS == {"min_accuracy": 0.2, "max_drop_vs_baseline": 0.1}
    # The default run's figures on the npm sample: adadelta 0.389 is 0.53 below sgd's 0.9165, adagrad 0.06.
    assert 0.9165 - 0.389 > default["max_drop_vs_baseline"] > 0.9165 - 0.8535
    words = _thresholds_words({"thresholds": default}, "sgd")
    assert words == (
        "test accuracy at least 0.2 and at most 0.1 below sgd; "
        "the default rule: clearly above chance, not far below the baseline"
    )
    own = suites.validate({"optimizers": ["sgd", "adam"], "thresholds": {"min_accuracy": 0.9}})["thresholds"]
    assert own == {"min_accuracy": 0.9, "max_drop_vs_baseline": 0.1}
    assert _thresholds_words({"thresholds": own}, "sgd") == "test accuracy at least 0.9 and at most 0.1 below sgd"
    lifted = {"min_accuracy": 0, "max_drop_vs_baseline": 1}
    assert suites.validate({"optimizers": ["sgd"], "thresholds": lifted})["thresholds"] == lifted


def test_with_a_margin_a_pair_inside_it_is_equivalent_and_one_outside_stays_undecided(inputs, tmp_path):
    """rmsprop's interval against adam (+0.0001 over 3 seeds) lies well within half a point: equivalent; with a
    margin narrower than that interval it is undecided again, and says what the run could have detected."""
    from report_inputs import SETTINGS, STEP_COST

    histories, summary, stats, predictions = inputs

    def report_with(margin: float) -> tuple[dict, str]:
        out = tmp_path / f"margin-{margin}"
        rows = build_report(
            histories,
            summary,
            stats,
            {**SETTINGS, "margin": margin},
            str(out),
            predictions=predictions,
            step_cost=STEP_COST,
        )
        return by_name(rows)["rmsprop"], (out / "report.md").read_text().split("\n\n")[1]

    rmsprop, said = report_with(0.005)
    assert rmsprop["equivalent_to_winner"] is True and rmsprop["significant_vs_winner"] is False
    assert ", equivalent within 0.005; paired bootstrap over seeds and examples, alpha 0.05)" in said

    rmsprop, said = report_with(0.0001)
    assert rmsprop["equivalent_to_winner"] is False
    assert "equivalent within" not in said and "undecided: this run could only detect differences of" in said
