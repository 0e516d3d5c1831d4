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
    # +0.0001 is far below what the test set alone lets any number of seeds see (the whole test split: no
    # larger one to offer)
    assert (
        f"undecided: this run could only detect differences of {rmsprop['detectable_vs_winner']:.3f} or more; "
        "no number of seeds would decide it with this test set; "
        "paired bootstrap over seeds and examples, alpha 0.05, detectable at 80% power): no single winner. "
        "adam is significantly better than momentum, sgd and adagrad." in verdict
    )
    assert rmsprop["seeds_to_decide"] is None and rmsprop["cost_to_decide_seconds"] is None
    assert by_name(report[0])["sgd"]["seeds_to_decide"] is None  # decided: significant
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


def test_an_undecided_pair_says_how_many_seeds_would_decide_it_and_what_they_cost(inputs, tmp_path):
    """With a margin of 0.002, rmsprop (+0.0001 over 3 seeds) is neither significant nor inside the margin; a few
    more seeds would show it equivalent. Their cost is both variants' trials at their mean cost, on the device the
    step-cost step timed."""
    from report_inputs import SETTINGS, STEP_COST

    from optbench.components.results.row import fmt_time

    histories, summary, stats, predictions = inputs
    gpu = {**STEP_COST, "device": "GPU", "device_name": "NVIDIA H200"}
    settings = {**SETTINGS, "margin": 0.002}
    rows = build_report(histories, summary, stats, settings, str(tmp_path), predictions=predictions, step_cost=gpu)
    adam, rmsprop = by_name(rows)["adam"], by_name(rows)["rmsprop"]
    assert rmsprop["equivalent_to_winner"] is False and rmsprop["significant_vs_winner"] is False
    seeds = rmsprop["seeds_to_decide"]
    assert seeds > 3 and rmsprop["examples_to_decide"] is None  # the whole test split: no larger one
    cost = (seeds - 3) * (adam["cost_seconds"] + rmsprop["cost_seconds"])
    assert rmsprop["cost_to_decide_seconds"] == pytest.approx(cost)
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert (
        f"or more; about {seeds} seeds would decide it ({2 * (seeds - 3)} more trials, {fmt_time(cost)} of "
        f"training, {cost / 3600:.2f} GPU-hours on NVIDIA H200); paired bootstrap" in verdict
    )
    sig = json.loads((tmp_path / "significance.json").read_text())
    todo = next(c for c in sig["comparisons"] if c["other"] == "rmsprop")["to_decide"]
    assert todo["goal"] == "show equivalent" and todo["seeds"] == seeds and sig["timed_on"]["device"] == "GPU"
    csv_header = (tmp_path / "comparison.csv").read_text().splitlines()[0].split(",")
    assert {"seeds_to_decide", "cost_to_decide_seconds", "examples_to_decide"} <= set(csv_header)


def test_one_seed_gives_at_least_so_many_seeds_and_a_limited_test_set_the_examples_too(labels, tmp_path):
    """One seed cannot tell training noise from test-set noise: the seeds figure is a lower bound. With the test set
    limited, the test examples that would decide it at the run's one seed are offered as well; costs timed on a CPU
    are hours, not GPU-hours."""
    from report_inputs import SETTINGS, STEP_COST

    histories, summary, stats, predictions = realistic_run(labels, seeds=(0,))
    cpu = {**STEP_COST, "device": "CPU", "device_name": None}
    settings = {**SETTINGS, "test_limit": len(labels)}
    rows = build_report(histories, summary, stats, settings, str(tmp_path), predictions=predictions, step_cost=cpu)
    rmsprop = by_name(rows)["rmsprop"]
    seeds, examples = rmsprop["seeds_to_decide"], rmsprop["examples_to_decide"]
    assert seeds >= 2 and examples > len(labels)
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert (
        f"at least {seeds} seeds would decide it (one seed cannot tell training noise from test-set noise; "
        f"{2 * (seeds - 1)} more trials, " in verdict
    )
    assert f"hours on the CPU), or {examples:,} test examples with 1 seed" in verdict
    assert "GPU-hours" not in verdict


def test_never_with_this_test_set_unless_a_larger_one(inputs, tmp_path):
    """A margin of 0.0001 cannot be shown on 10,000 examples by any number of seeds; a limited test set says how
    many examples would."""
    from report_inputs import SETTINGS, STEP_COST

    histories, summary, stats, predictions = inputs
    settings = {**SETTINGS, "margin": 0.0001, "test_limit": 10_000}
    rows = build_report(
        histories, summary, stats, settings, str(tmp_path), predictions=predictions, step_cost=STEP_COST
    )
    rmsprop = by_name(rows)["rmsprop"]
    assert rmsprop["seeds_to_decide"] is None and rmsprop["cost_to_decide_seconds"] is None
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert (
        "no number of seeds would decide it with this test set "
        f"({rmsprop['examples_to_decide']:,} test examples would)" in verdict
    )


def test_seeds_until_decided_give_the_verdict_its_decisions_and_the_report_its_rounds(inputs, tmp_path):
    """The realistic run as if it had started with 2 seeds and added a third: the sequential test's record (made
    here by the same functions the decide step calls) decides the verdict, marks the rows, has its own section
    with one line per pair and look, and is kept as sequential.json."""
    from report_inputs import SETTINGS, STEP_COST

    from optbench.components.report.verdict import sequential_sentence
    from optbench.components.results import sequential as sq
    from optbench.components.shared.schema import SEQUENTIAL_JSON

    histories, summary, stats, predictions = inputs
    correct: dict[str, dict[int, object]] = {}
    for h in histories:
        if h["status"] == "ok" and predictions.finite(h["trial"]):
            correct.setdefault(h["variant"], {})[h["seed"]] = predictions.correct(h["trial"])
    complete = {v for v, seeds in correct.items() if len(seeds) == 3}
    leader = max(sorted(complete), key=lambda v: sum(c.mean() for c in correct[v].values()))
    record = sq.start(leader, [v for v in correct if v != leader], 2, 3, 0.05, 0.005)
    sq.advance(record, {v: {s: c for s, c in seeds.items() if s < 2} for v, seeds in correct.items()}, 2)
    sq.advance(record, correct, 3)
    assert record["stopped"] in ("decided", "budget") and record["decisions"]  # the run tells some pairs apart

    out = tmp_path / "report"
    rows = build_report(
        histories, summary, stats, SETTINGS, str(out), predictions=predictions, step_cost=STEP_COST, sequential=record
    )
    said = (out / "report.md").read_text().split("\n\n")[1]
    assert sequential_sentence(record) in said and "Holm-adjusted" not in said
    for row in rows:
        decided = record["decisions"].get(row["optimizer"])
        if row["optimizer"] == leader or row["optimizer"] not in record["contenders"]:
            assert row["decision_vs_leader"] is None
        else:
            assert row["decision_vs_leader"] == (decided["decision"] if decided else sq.UNDECIDED)
            assert row["decided_at_seeds"] == (decided["seeds"] if decided else None)
            assert row["optimizer"] in sequential_sentence(record)
    section = (out / "report.md").read_text().split("## Seeds until decided")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(lines) == sum(len(look["pairs"]) for look in record["looks"])
    assert "the sequential test below chose to add" in (out / "report.md").read_text()
    assert json.loads((out / SEQUENTIAL_JSON).read_text()) == json.loads(json.dumps(record))


def test_a_variant_whose_every_seed_hit_a_numerical_fault_is_reported_as_one_not_as_diverged(tmp_path, labels):
    """The training step's replay found adadelta's NaN at step 1 with the loss never rising (a fault of its update):
    the row says so, the verdict gives the step and the weight, and it is kept out of the comparison all the same."""
    from optbench.components.results.row import display_name

    histories, summary, stats, predictions = realistic_run(labels, seeds=(0, 1))
    for h in (h for h in histories if h["variant"] == "adadelta"):
        h["status"] = "fault"
        h["fault"] = {"step": 1, "weight": "dense/kernel", "loss_rose": False}
    rows = build_report(histories, summary, stats, {}, str(tmp_path), predictions=predictions)
    adadelta = by_name(rows)["adadelta"]
    assert adadelta["status"] == "fault" and adadelta["test_accuracy"] is None
    assert adadelta["faults"] == [{"seed": s, "step": 1, "weight": "dense/kernel"} for s in (0, 1)]
    assert display_name(adadelta) == "adadelta (numerical fault)"
    md = (tmp_path / "report.md").read_text()
    assert (
        "adadelta hit a numerical fault: its update turned a weight non-finite before the loss ever rose "
        "(seed 0 at step 1 (dense/kernel); seed 1 at step 1 (dense/kernel)). That is a fault of its "
        "implementation on this network, not divergence; it is left out of the comparison." in md
    )
    assert "adadelta diverged" not in md
    sig = strict_json((tmp_path / "significance.json").read_text())
    assert "adadelta" not in {c["other"] for c in sig["comparisons"]}
