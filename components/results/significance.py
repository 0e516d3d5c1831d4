"""Is the winner really better? Paired tests of its test accuracy against each other variant.

Every model is scored on the same test examples, so the comparison is paired:
what matters is the examples on which two models disagree, not the two
accuracies on their own (two models at 0.97 may err on the same digits or on
different ones). Variants are also paired by seed: trials of one seed start
from the same initial weights and see the same data order.

One seed in common: the exact McNemar test. Of the discordant examples (one
model right, the other wrong), under "equally accurate" each is equally likely
to favour either model, so the count favouring the winner is Binomial(b + c,
1/2); the two-sided binomial p-value is exact at any sample size, with no
continuity correction to argue about.

Several seeds: a two-level paired bootstrap of the seed-averaged accuracy
difference. Each replicate draws the seeds with replacement (a seed brings the
winner's and the other's trial together) and the test examples with
replacement (the same draw for every trial, which keeps the pairing), and
averages the accuracy difference. Resampling seeds carries the training
randomness into the interval, which McNemar on pooled seeds would ignore
(it would count each example once per seed, as if seeds were new examples,
and so overstate the evidence); resampling examples carries the test-set
sampling. With few seeds the seed level is coarse and the interval somewhat
narrow (a bootstrap of n values has variance (n-1)/n of the truth), which is
why the report shows the seed count beside every verdict. The p-value is the
smallest level at which the percentile interval excludes zero: two-sided,
2 * min(share of replicates <= 0, share >= 0), with the usual +1 so that it
is never zero. A 95% percentile interval of the difference is reported in
both cases.

The winner is compared with every other variant, so the p-values are adjusted
with Holm's step-down method (which controls the family-wise error rate like
Bonferroni but rejects more), at alpha 0.05. The winner is "significantly
best" only when every comparison is significant.

Pure numpy/scipy: the report step calls this without TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import bdtr, ndtri

from optbench.components.shared.predictions import Predictions

ALPHA = 0.05
REPLICATES = 4000
CONFIDENCE = 0.95
SEED = 0  # a fixed generator: the same inputs give the same report
POWER = 0.8  # the chance of detecting a difference as large as the detectable one
_CHUNK = 500  # replicates drawn at a time, to bound memory for large test sets

Correct = dict[int, np.ndarray]  # seed -> bool [N]: which test examples the trial of that seed got right

TEST_WORDS = {"mcnemar-exact": "exact McNemar test", "paired-bootstrap": "paired bootstrap over seeds and examples"}


def scored_trials(row: dict, predictions: Predictions) -> list[dict]:
    """The row's per-seed entries whose predictions a paired test may use: trained to the end without diverging,
    with finite predictions. The run's record keeps exactly these."""
    return [
        s
        for s in row["per_seed"]
        if not s["diverged"]
        and not s["stopped"]  # a trial stopped early never finished: it is never scored
        and s["trial"] in predictions.predicted
        and predictions.finite(s["trial"])
    ]


def mcnemar_exact(winner: np.ndarray, other: np.ndarray) -> tuple[float, int, int]:
    """(two-sided exact p-value, b = examples only `winner` got right, c = only `other`) for bool [N] arrays."""
    b = int(np.sum(winner & ~other))
    c = int(np.sum(~winner & other))
    # Binomial(b + c, 1/2) is symmetric, so the two-sided p-value is twice the smaller tail.
    p = 1.0 if b + c == 0 else min(1.0, 2 * float(bdtr(min(b, c), b + c, 0.5)))
    return p, b, c


def bootstrap_difference(
    winner: np.ndarray, other: np.ndarray, replicates: int = REPLICATES, seed: int = SEED
) -> np.ndarray:
    """float [replicates]: the seed-averaged accuracy difference under the two-level paired bootstrap.

    `winner` and `other` are bool [S, N], row s of both from the same seed. Only examples on which
    some seed's pair disagrees move the difference, so only their resampling counts are drawn (a
    multinomial over them plus one "all the rest" cell: exactly the counts of N draws with
    replacement, at a fraction of the cost).
    """
    rng = np.random.default_rng(seed)
    d = winner.astype(np.int8) - other.astype(np.int8)  # [S, N] in {-1, 0, 1}
    n_seeds, n = d.shape
    moving = np.flatnonzero(np.any(d != 0, axis=0))
    out = np.zeros(replicates)
    if moving.size == 0:
        return out
    d = d[:, moving].T.astype(np.float64)  # [K, S]
    cells = np.append(np.full(moving.size, 1.0 / n), 1.0 - moving.size / n)
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        counts = rng.multinomial(n, cells, size=size)[:, :-1]  # [size, K]
        per_seed = counts @ d / n  # [size, S]: accuracy difference of each seed on the resampled examples
        seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=size) / n_seeds
        out[start : start + size] = np.sum(per_seed * seed_weights, axis=1)
    return out


def paired_test(winner: Correct, other: Correct, replicates: int = REPLICATES) -> dict | None:
    """Compare two variants on the seeds both have; None when they share no seed.

    Returns difference (winner minus other, mean over the shared seeds), a 95% interval, the
    two-sided p-value, the test used, the seeds, and for McNemar the discordant counts.
    """
    seeds = sorted(set(winner) & set(other))
    if not seeds:
        return None
    w = np.stack([winner[s] for s in seeds])
    o = np.stack([other[s] for s in seeds])
    boot = bootstrap_difference(w, o, replicates)
    tail = (1 - CONFIDENCE) / 2
    result = {
        "seeds": seeds,
        "difference": float(w.mean() - o.mean()),
        "ci_low": float(np.quantile(boot, tail)),
        "ci_high": float(np.quantile(boot, 1 - tail)),
    }
    if len(seeds) == 1:
        p, b, c = mcnemar_exact(w[0], o[0])
        return {**result, "test": "mcnemar-exact", "p_value": p, "discordant": [b, c]}
    below, above = int(np.sum(boot <= 0)), int(np.sum(boot >= 0))
    p = min(1.0, 2 * (min(below, above) + 1) / (replicates + 1))
    return {**result, "test": "paired-bootstrap", "p_value": p, "discordant": None}


def detectable_difference(comparison: dict, examples: int, alpha: float) -> float:
    """The smallest accuracy difference this comparison had an 80% chance (POWER) to find significant at `alpha`.

    A difference smaller than this going undetected says little: the run could not have seen it. The
    standard error is the one the test itself used: with one seed, McNemar's under "equally accurate",
    sqrt(discordant share / N) (at least one discordant example, so that two models that agreed everywhere do
    not claim to detect any difference); with several, the paired bootstrap's, from its 95% interval's width.
    Then the difference is (z[1 - alpha/2] + z[POWER]) x standard error, the normal approximation of both
    tests (the exact McNemar test is a little more conservative at small discordant counts).
    """
    if comparison["discordant"] is not None:
        se = math.sqrt(max(1, sum(comparison["discordant"])) / examples) / math.sqrt(examples)
    else:
        se = (comparison["ci_high"] - comparison["ci_low"]) / (2 * float(ndtri(1 - (1 - CONFIDENCE) / 2)))
    return float((ndtri(1 - alpha / 2) + ndtri(POWER)) * se)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (monotone in the sorted order, capped at 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def compare_with_winner(
    correct: dict[str, Correct], winner: str, alpha: float = ALPHA, replicates: int = REPLICATES, margin: float = 0.0
) -> dict:
    """The winner against every other variant in `correct` (variant -> seed -> bool [N]).

    Variants sharing no seed with the winner cannot be paired and are listed under `unpaired`.
    `significant` per comparison uses the Holm-adjusted p-value; `winner_significant` is true
    when there is at least one comparison and every one is significant.
    """
    comparisons, unpaired = [], []
    for name, trials in correct.items():
        if name == winner:
            continue
        result = paired_test(correct[winner], trials, replicates)
        if result is None:
            unpaired.append(name)
        else:
            comparisons.append({"other": name, **result})
    examples = next((len(seeds[s]) for seeds in correct.values() for s in seeds), 0)
    for c, p in zip(comparisons, holm([c["p_value"] for c in comparisons])):
        c["p_holm"] = p
        c["significant"] = p < alpha
        # Holm's first, strictest step: alpha over the number of comparisons, so the figure holds for every pair
        c["detectable"] = detectable_difference(c, examples, alpha / len(comparisons))
        # Two one-sided tests: the whole 95% interval inside +-margin rejects "at least margin apart" on each side
        # at 2.5%, stricter than TOST's usual 90% interval at alpha 0.05.
        c["equivalent"] = bool(margin > 0 and not c["significant"] and -margin < c["ci_low"] and c["ci_high"] < margin)
    return {
        "winner": winner,
        "alpha": alpha,
        "correction": "holm",
        "power": POWER,
        "margin": margin,
        "replicates": replicates,
        "comparisons": comparisons,
        "unpaired": unpaired,
        "winner_significant": bool(comparisons) and all(c["significant"] for c in comparisons),
    }
