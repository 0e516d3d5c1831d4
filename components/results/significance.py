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

A pair neither significant nor equivalent is undecided, and `to_decide` says
what would decide it: how many seeds (or, on a limited test set, how many test
examples) would give the test 80% power at the difference observed. Every
seed is scored on the same test examples, so more seeds shrink only the
training noise; the test-set sampling stays, and when it alone is wider than
the power asks for, no number of seeds decides the pair on this test set.

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
    two-sided p-value, the test used, the seeds, for McNemar the discordant counts, and the two
    parts of the difference's variance (`variance_components`: var_seeds, var_floor, and
    seeds_at_least when one seed cannot tell them apart).
    """
    seeds = sorted(set(winner) & set(other))
    if not seeds:
        return None
    w = np.stack([winner[s] for s in seeds])
    o = np.stack([other[s] for s in seeds])
    boot = bootstrap_difference(w, o, replicates)
    tail = (1 - CONFIDENCE) / 2
    var_seeds, var_floor, var_within = variance_components(w.astype(np.int8) - o.astype(np.int8))
    result = {
        "seeds": seeds,
        "difference": float(w.mean() - o.mean()),
        "ci_low": float(np.quantile(boot, tail)),
        "ci_high": float(np.quantile(boot, 1 - tail)),
        "var_seeds": var_seeds,
        "var_floor": var_floor,
        "var_within": var_within,
        "seeds_at_least": len(seeds) == 1,  # one seed cannot split the two parts: seeds_to_decide is a lower bound
    }
    if len(seeds) == 1:
        p, b, c = mcnemar_exact(w[0], o[0])
        return {**result, "test": "mcnemar-exact", "p_value": p, "discordant": [b, c]}
    below, above = int(np.sum(boot <= 0)), int(np.sum(boot >= 0))
    p = min(1.0, 2 * (min(below, above) + 1) / (replicates + 1))
    return {**result, "test": "paired-bootstrap", "p_value": p, "discordant": None}


def variance_components(d: np.ndarray) -> tuple[float, float, float]:
    """(var_seeds, var_floor, var_within) of the seed-averaged accuracy difference, from d = winner - other,
    int [S, N] in {-1, 0, 1}, row s of both from the same seed.

    The model: with S' seeds on this test set, Var(mean difference) = var_floor + var_seeds / S'. var_floor is
    the test-set sampling part: the examples are the same for every seed, so which ones the test set happens to
    hold moves every seed's difference alike, and more seeds never remove it. var_seeds is the training noise:
    how much one seed's difference D_s = mean_i d[s, i] varies from seed to seed. var_within is the part of it
    that is example-level (which examples each seed gets wrong, mean_i var_s(d[s, i]) / N): the paired bootstrap
    meets it again when it resamples examples, so its interval counts it twice.

    Several seeds: var_seeds = var over seeds of D_s (ddof=1). var_floor comes from the per-example differences
    averaged over seeds, D_i = mean_s d[s, i]: their variance over examples holds the examples' own spread plus
    the seed noise left in a mean of S seeds, var_within x N / S; what remains once that is taken off (never
    below zero), over N, is the floor.

    One seed: the parts cannot be told apart. var(d) / N (about the discordant share / N, McNemar's variance)
    is all called seed noise, all of it example-level, and the floor zero, which is the most that seeds could
    do: the seeds figure made of it is a lower bound.
    """
    n_seeds, n = d.shape
    if n < 2:  # a single example says nothing about spread
        return 0.0, 0.0, 0.0
    d = d.astype(np.float64)
    if n_seeds == 1:
        single = float(np.var(d[0], ddof=1) / n)
        return single, 0.0, single
    var_seeds = float(np.var(d.mean(axis=1), ddof=1))
    within = float(np.mean(np.var(d, axis=0, ddof=1)))
    var_floor = max(0.0, float(np.var(d.mean(axis=0), ddof=1)) - within / n_seeds) / n
    return var_seeds, var_floor, within / n


def to_decide(comparison: dict, alpha: float, margin: float, examples: int, test_limited: bool = False) -> dict:
    """What would give an undecided comparison 80% power (POWER) at the difference it observed.

    `comparison` is `paired_test`'s result; `alpha` the level its pair is tested at (Holm's strictest step,
    alpha over the number of comparisons, as `detectable_difference` uses, so the figure holds for every pair);
    `margin` the equivalence margin (0: off); `examples` the test set's size N.

    The goal and the standard error it needs, se*: to tell the pair apart (no margin, or an observed difference
    |diff| at least the margin), |diff| / (z[1 - alpha/2] + z[POWER]); to show it equivalent (|diff| below the
    margin), (margin - |diff|) / (z[1 - (1 - CONFIDENCE)/2] + z[POWER]), since equivalence asks the whole 95%
    interval to lie within the margin. No margin and no difference: nothing to aim at, never.

    Seeds: the test that would decide it is the paired bootstrap, whose variance with S' seeds is var_floor +
    (var_seeds + var_within) / S' (`variance_components`: it meets the seeds' example-level noise twice), so S' =
    ceil((var_seeds + var_within) / (se*^2 - var_floor)), at least one more than the run's S; never when se*^2 <=
    var_floor, the test-set part alone being too wide. With one seed the floor is unknown (taken as zero):
    `seeds_at_least`.

    Examples, only when the run limited its test set (`test_limited`: a larger one exists): at the run's S
    seeds, with every part of the variance shrinking like 1/N, ceil(N x (var_floor + (var_seeds + var_within) / S) /
    se*^2),
    given only when larger than N. Seed noise on a fixed test set is mostly which examples each seed gets wrong,
    which does shrink with N; any part that does not would make the figure optimistic.

    Returns {"goal", "seeds" (None: never), "seeds_at_least", "never", "examples" (None: not given)}.
    """
    seeds, diff = len(comparison["seeds"]), abs(comparison["difference"])
    per_seed, var_floor = comparison["var_seeds"] + comparison["var_within"], comparison["var_floor"]
    if margin > 0 and diff < margin:
        goal, gap, z = "show equivalent", margin - diff, float(ndtri(1 - (1 - CONFIDENCE) / 2))
    else:
        goal, gap, z = "tell apart", diff, float(ndtri(1 - alpha / 2))
    result = {
        "goal": goal,
        "seeds": None,
        "seeds_at_least": comparison["seeds_at_least"],
        "never": True,
        "examples": None,
    }
    if gap == 0:
        return result
    target = (gap / (z + float(ndtri(POWER)))) ** 2  # se*^2
    if target > var_floor:
        result["seeds"] = max(seeds + 1, math.ceil(per_seed / (target - var_floor)))
        result["never"] = False
    if test_limited:
        needed = math.ceil(examples * (var_floor + per_seed / seeds) / target)
        result["examples"] = needed if needed > examples else None
    return result


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
    correct: dict[str, Correct],
    winner: str,
    alpha: float = ALPHA,
    replicates: int = REPLICATES,
    margin: float = 0.0,
    test_limited: bool = False,
) -> dict:
    """The winner against every other variant in `correct` (variant -> seed -> bool [N]).

    Variants sharing no seed with the winner cannot be paired and are listed under `unpaired`.
    `significant` per comparison uses the Holm-adjusted p-value; `winner_significant` is true
    when there is at least one comparison and every one is significant. An undecided comparison
    (neither significant nor equivalent) carries `to_decide`, the others None; `test_limited` says
    the run evaluated on part of the test set, so that more test examples are an answer too.
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
        undecided = not c["significant"] and not c["equivalent"]
        c["to_decide"] = to_decide(c, alpha / len(comparisons), margin, examples, test_limited) if undecided else None
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
