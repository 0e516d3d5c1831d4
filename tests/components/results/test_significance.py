"""The paired significance tests, on cases whose answer is known."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.stats import binomtest

from optbench.components.results.significance import (
    REPLICATES,
    bootstrap_difference,
    compare_with_winner,
    holm,
    mcnemar_exact,
    paired_test,
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
