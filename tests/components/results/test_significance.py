"""The paired significance tests, on cases whose answer is known."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import binomtest

from optbench.components.results.significance import (
    ALPHA,
    REPLICATES,
    bootstrap_difference,
    compare_with_winner,
    holm,
    mcnemar_exact,
    paired_test,
    to_decide,
    variance_components,
)

N = 10_000  # the size of MNIST's test split


def correctness(accuracy: float, seed: int, n: int = N) -> np.ndarray:
    """bool [n] with exactly round(accuracy * n) true values at random places."""
    out = np.zeros(n, bool)
    out[np.random.default_rng(seed).permutation(n)[: round(accuracy * n)]] = True
    return out


def flipped(base: np.ndarray, fix: int, break_: int, seed: int) -> np.ndarray:
    """`base` with `fix` wrong examples made right and `break_` right ones made wrong."""
    rng = np.random.default_rng(seed)
    out = base.copy()
    out[rng.choice(np.flatnonzero(~base), fix, replace=False)] = True
    out[rng.choice(np.flatnonzero(base), break_, replace=False)] = False
    return out


def test_identical_predictions_are_not_significant():
    a = correctness(0.97, seed=1)
    for seeds in ([0], [0, 1, 2]):
        result = paired_test({s: a for s in seeds}, {s: a.copy() for s in seeds})
        assert result["difference"] == 0.0 and result["p_value"] == 1.0
        assert result["ci_low"] == 0.0 == result["ci_high"]
    assert mcnemar_exact(a, a) == (1.0, 0, 0)


def test_mcnemar_counts_only_the_discordant_examples():
    base = correctness(0.95, seed=2)
    better = flipped(base, fix=10, break_=0, seed=3)
    p, b, c = mcnemar_exact(better, base)
    assert (b, c) == (10, 0) and p == pytest.approx(2 * 0.5**10)  # 0.00195: all 10 disagreements one way
    # Same accuracy gap (+30 examples), but reached through many disagreements: far weaker evidence.
    noisy = flipped(base, fix=230, break_=200, seed=4)
    p_noisy, b, c = mcnemar_exact(noisy, base)
    assert (b, c) == (230, 200) and p_noisy == pytest.approx(binomtest(230, 430, 0.5).pvalue) and p_noisy > 0.1


def test_a_clearly_better_model_is_significant_with_one_seed():
    base = correctness(0.95, seed=5)
    better = flipped(base, fix=150, break_=30, seed=6)  # +1.2 points
    result = paired_test({0: better}, {0: base})
    assert result["test"] == "mcnemar-exact" and result["discordant"] == [150, 30]
    assert result["difference"] == pytest.approx(0.012)
    assert result["p_value"] < 1e-15
    # The bootstrap interval agrees with the normal approximation of a paired difference.
    d = better.astype(int) - base.astype(int)
    half = 1.96 * d.std() / np.sqrt(N)
    assert result["ci_low"] == pytest.approx(0.012 - half, abs=1e-3)
    assert result["ci_high"] == pytest.approx(0.012 + half, abs=1e-3)


def test_a_clearly_better_model_is_significant_across_seeds():
    winner, other = {}, {}
    for seed in range(3):
        other[seed] = correctness(0.95, seed=10 + seed)
        winner[seed] = flipped(other[seed], fix=140 + 10 * seed, break_=30, seed=20 + seed)
    result = paired_test(winner, other)
    assert result["test"] == "paired-bootstrap" and result["seeds"] == [0, 1, 2]
    assert result["difference"] == pytest.approx(0.012)
    assert result["p_value"] == pytest.approx(2 / (REPLICATES + 1))  # no replicate at or below zero
    assert 0.008 < result["ci_low"] < 0.012 < result["ci_high"] < 0.016


def test_seed_to_seed_reversals_are_not_significant():
    """+2 points on two seeds, -2 on the third: pooling the seeds as if they were more examples would call
    a +0.7 point edge significant; the seed level of the bootstrap does not."""
    winner, other = {}, {}
    for seed, (fix, break_) in enumerate([(250, 50), (250, 50), (50, 250)]):
        other[seed] = correctness(0.95, seed=30 + seed)
        winner[seed] = flipped(other[seed], fix=fix, break_=break_, seed=40 + seed)
    pooled_p, _, _ = mcnemar_exact(np.concatenate(list(winner.values())), np.concatenate(list(other.values())))
    assert pooled_p < 1e-6
    result = paired_test(winner, other)
    assert result["difference"] == pytest.approx(0.02 / 3)
    assert result["p_value"] > 0.05 and result["ci_low"] < 0 < result["ci_high"]


def test_bootstrap_is_reproducible_and_quick():
    w = np.stack([correctness(0.98, seed=s) for s in range(3)])
    o = np.stack([correctness(0.97, seed=s + 3) for s in range(3)])
    started = time.perf_counter()
    first = bootstrap_difference(w, o)
    assert time.perf_counter() - started < 5
    assert np.array_equal(first, bootstrap_difference(w, o))
    assert first.mean() == pytest.approx(0.01, abs=1e-3)


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_compare_with_winner_needs_every_comparison_significant():
    base = correctness(0.95, seed=50)
    correct = {
        "adam": {0: flipped(base, fix=200, break_=20, seed=51)},
        "rmsprop": {0: flipped(base, fix=195, break_=20, seed=52)},  # adam's equal
        "sgd": {0: base},
        "lion": {1: base},  # a different seed: nothing to pair with
    }
    result = compare_with_winner(correct, "adam")
    by_other = {c["other"]: c for c in result["comparisons"]}
    assert set(by_other) == {"rmsprop", "sgd"} and result["unpaired"] == ["lion"]
    assert by_other["sgd"]["significant"] and not by_other["rmsprop"]["significant"]
    assert by_other["sgd"]["p_holm"] == pytest.approx(min(1.0, 2 * by_other["sgd"]["p_value"]))
    assert result["winner_significant"] is False
    alone = compare_with_winner({"adam": correct["adam"], "sgd": correct["sgd"]}, "adam")
    assert alone["winner_significant"] is True
    assert compare_with_winner({"adam": correct["adam"]}, "adam")["winner_significant"] is False


def test_the_detectable_difference_is_detected_four_times_in_five_and_half_of_it_rarely():
    """Simulated paired test sets: at the difference the run says it could detect, McNemar at the same level
    finds it about 80% of the time; at half of it, far less often. Two models of 0.97 disagreeing on 3% of
    2,000 test digits, the default run's scale."""
    from optbench.components.results.significance import POWER, detectable_difference, mcnemar_exact

    rng = np.random.default_rng(1)
    n, discordant, alpha = 2000, 0.03, 0.01
    detectable = detectable_difference({"discordant": [30, 30], "ci_low": 0, "ci_high": 0}, n, alpha)
    assert 0.01 < detectable < 0.02

    def power(difference: float, runs: int = 2000) -> float:
        found = 0
        for _ in range(runs):
            # each example: only the first right, only the second right, or both the same
            share = [(discordant + difference) / 2, (discordant - difference) / 2]
            cells = rng.choice(3, size=n, p=[*share, 1 - discordant])
            first, second = cells != 1, cells != 0
            found += mcnemar_exact(first, second)[0] < alpha
        return found / runs

    assert POWER - 0.1 < power(detectable) < POWER + 0.1
    assert power(detectable / 2) < 0.4


def undecided(difference: float, var_seeds: float, var_floor: float, seeds: int = 3) -> dict:
    """A comparison as paired_test returns it, reduced to what to_decide reads."""
    return {
        "seeds": list(range(seeds)),
        "difference": difference,
        "var_seeds": var_seeds,
        "var_floor": var_floor,
        "var_within": 0.0,
        "seeds_at_least": seeds == 1,
    }


def test_variance_components_split_test_set_from_training_noise():
    """Every seed erring on the same examples: all of the spread is the test set's, none the seeds'. Each seed
    erring on examples of its own, with no example favouring either model: all of it is the seeds'."""
    rng = np.random.default_rng(60)
    same = np.tile(rng.choice([-1, 0, 0, 0, 1], size=N), (3, 1))
    var_seeds, var_floor, var_within = variance_components(same)
    assert var_seeds == pytest.approx(0.0, abs=1e-20) and var_floor == pytest.approx(np.var(same[0], ddof=1) / N)
    assert var_within == 0.0
    fresh = rng.choice([-1, 0, 0, 0, 1], size=(3, N))
    var_seeds, var_floor, var_within = variance_components(fresh)
    assert var_floor < 0.1 * var_seeds and var_seeds > 0
    assert var_within == pytest.approx(0.4 / N, rel=0.1)  # all of it example-level: var(d) = 2/5 per example


def test_one_seed_gives_a_lower_bound_on_the_seeds():
    """One seed cannot split its variance: all of it is called training noise, the floor zero, the most seeds
    could do, so the figure is 'at least'."""
    base = correctness(0.95, seed=61)
    other = flipped(base, fix=60, break_=40, seed=62)
    result = paired_test({0: base}, {0: other})
    d = base.astype(int) - other.astype(int)
    assert result["seeds_at_least"] is True and result["var_floor"] == 0.0
    assert result["var_seeds"] == pytest.approx(np.var(d, ddof=1) / N)
    todo = to_decide(result, ALPHA, 0.0, N)
    assert todo["seeds_at_least"] and not todo["never"] and todo["seeds"] >= 2
    assert paired_test({s: base for s in (0, 1)}, {s: other for s in (0, 1)})["seeds_at_least"] is False


def test_never_when_the_test_set_alone_is_too_wide_and_then_only_more_examples_would():
    floor_bound = undecided(0.002, var_seeds=4e-6, var_floor=1e-6)  # se* = 0.002 / 2.8 = 7e-4: se*^2 < var_floor
    todo = to_decide(floor_bound, ALPHA, 0.0, N)
    assert todo["never"] and todo["seeds"] is None and todo["examples"] is None
    limited = to_decide(floor_bound, ALPHA, 0.0, N, test_limited=True)
    assert limited["never"] and limited["examples"] > N
    # a smaller floor: seeds would do it, and the examples figure is the same variance over a larger N
    seeds_do = to_decide(undecided(0.002, var_seeds=4e-6, var_floor=1e-7), ALPHA, 0.0, N, test_limited=True)
    assert not seeds_do["never"] and seeds_do["seeds"] > 3
    assert seeds_do["examples"] < limited["examples"]


def test_the_examples_figure_is_given_only_when_larger_than_the_test_set():
    plenty = undecided(0.02, var_seeds=1e-6, var_floor=1e-7)  # the run was nearly there
    todo = to_decide(plenty, ALPHA, 0.0, N, test_limited=True)
    assert todo["examples"] is None and todo["seeds"] == 4  # never fewer than one more seed than the run had


def test_a_smaller_difference_needs_more_seeds_and_none_needs_a_margin():
    needed = [
        to_decide(undecided(diff, var_seeds=4e-6, var_floor=1e-8), ALPHA, 0.0, N)["seeds"]
        for diff in (0.0025, 0.002, 0.0015, 0.001)
    ]
    assert needed == sorted(needed) and len(set(needed)) == len(needed)
    assert to_decide(undecided(0.0, 4e-6, 1e-8), ALPHA, 0.0, N)["never"]  # nothing to tell apart
    equivalent = to_decide(undecided(0.0, 4e-6, 1e-8), ALPHA, 0.005, N)
    assert equivalent["goal"] == "show equivalent" and not equivalent["never"]
    # equivalence: the closer the difference to the margin, the more seeds it takes to show
    assert to_decide(undecided(0.003, 4e-6, 1e-8), ALPHA, 0.005, N)["seeds"] > equivalent["seeds"]
    assert to_decide(undecided(0.006, 4e-6, 1e-8), ALPHA, 0.005, N)["goal"] == "tell apart"


def test_only_undecided_comparisons_say_what_would_decide_them():
    base = correctness(0.95, seed=63)
    correct = {
        "adam": {0: flipped(base, fix=200, break_=20, seed=64)},
        "rmsprop": {0: flipped(base, fix=195, break_=20, seed=65)},
        "sgd": {0: base},
    }
    by_other = {c["other"]: c for c in compare_with_winner(correct, "adam")["comparisons"]}
    assert by_other["sgd"]["to_decide"] is None
    assert by_other["rmsprop"]["to_decide"]["seeds_at_least"] is True


def simulated_trials(rng: np.random.Generator, seeds: int, runs: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Which test examples two models got right, bool [runs, seeds, n] each, on fresh test sets: a shared
    per-example difficulty, a per-example lean of each model (what makes a test-set floor), a per-seed shift of
    each model (training noise that more examples do not remove) and the first model 0.15 logits better."""
    logit = 2.5 + rng.normal(0, 1.5, (runs, 1, 1, n)) + rng.normal(0, 0.7, (runs, 2, 1, n))
    logit = logit + rng.normal(0, 0.06, (runs, 2, seeds, 1))
    logit[:, 0] += 0.15
    right = rng.random(logit.shape) < expit(logit)
    return right[:, 0], right[:, 1]


def test_the_seeds_to_decide_give_the_reports_test_about_eighty_percent_power_in_simulation():
    """Pilots of 3 seeds give the variance components; at the seeds to_decide asks for, fresh experiments (new
    test sets, new seeds) run through the report's own test, the paired bootstrap, find the true difference
    about 80% of the time.

    One pilot's var_seeds has 2 degrees of freedom (a factor of 3 off either way is common), so the components are
    averaged over many pilots (every estimator is unbiased) and the true difference is aimed at: this checks the
    formula, not one pilot's luck. The bounds 0.65-0.95 allow for the rounding up of the seeds and 150
    experiments (binomial sd 0.033)."""
    rng = np.random.default_rng(66)
    alpha = ALPHA / 3  # Holm's strictest step with three comparisons
    first, second = simulated_trials(rng, 3, 200)
    parts = np.mean([variance_components(a.astype(np.int8) - b.astype(np.int8)) for a, b in zip(first, second)], 0)
    many_first, many_second = simulated_trials(rng, 1, 1000)
    pilot = undecided(float(many_first.mean() - many_second.mean()), parts[0], parts[1])
    seeds = to_decide({**pilot, "var_within": parts[2]}, alpha, 0.0, 2000)["seeds"]
    assert 5 <= seeds <= 40  # the simulation is scaled so that seeds can decide it, at a cost
    fresh_first, fresh_second = simulated_trials(rng, seeds, 150)
    p = [
        paired_test(dict(enumerate(a)), dict(enumerate(b)), replicates=500)["p_value"]
        for a, b in zip(fresh_first, fresh_second)
    ]
    power = float(np.mean(np.array(p) < alpha))
    assert 0.65 < power < 0.95, (seeds, power)
