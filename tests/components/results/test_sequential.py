"""Seeds until decided: the boundaries spend alpha as planned, and the whole adaptive procedure, run on simulated
test-set correctness (no training), keeps its false positives within alpha and has the power it predicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optbench.components.results import sequential as sq

EXAMPLES = 2000
SIMULATIONS = 1000


def margin_of_error(rate: float, n: int) -> float:
    """Three standard errors of a simulated rate: a bound the tests miss by chance about once in 700 runs."""
    return 3 * math.sqrt(rate * (1 - rate) / n)


def test_boundaries_spend_alpha_as_planned():
    """Brownian paths crossing the boundaries: the share first crossing at each look is the spending function's
    increment, and all looks together spend alpha."""
    fractions = [0.25, 0.5, 0.75, 1.0]
    bounds = np.array(sq.boundaries(fractions, 0.05))
    rng = np.random.default_rng(1)
    steps = rng.standard_normal((400_000, 4)) * np.sqrt(np.diff([0.0, *fractions]))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    crossed = np.abs(z) >= bounds
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    spent = [sq.spent(t, 0.05) for t in fractions]
    for k, increment in enumerate(np.diff([0.0, *spent])):
        assert np.mean(first == k) == pytest.approx(increment, abs=margin_of_error(increment, 400_000) + 1e-5)
    assert np.mean(first >= 0) == pytest.approx(0.05, abs=0.002)
    assert list(bounds) == sorted(bounds, reverse=True)  # O'Brien-Fleming: strict early, close to 1.96 at the end
    assert sq.boundaries([1.0], 0.05) == pytest.approx([1.959964], abs=1e-5)


def test_schedule_needs_two_seeds_and_a_budget():
    looks = sq.schedule(1, 4, 0.05)
    assert [p["seeds"] for p in looks] == [2, 3, 4]  # one seed cannot measure training noise: no look at 1
    assert looks[-1]["fraction"] == 1.0
    for first, most in ((3, 2), (1, 1), (0, 3)):
        with pytest.raises(ValueError, match="max_seeds"):
            sq.schedule(first, most, 0.05)


def test_decide_reads_the_boundary_and_the_margin():
    assert sq.decide(0.02, 0.005, 2.5, 0.0) == "better"
    assert sq.decide(-0.02, 0.005, 2.5, 0.0) == "worse"
    assert sq.decide(0.001, 0.001, 2.5, 0.005) == "equivalent"  # [-0.0015, 0.0035] inside +-0.005
    assert sq.decide(0.001, 0.002, 2.5, 0.005) == sq.UNDECIDED  # [-0.004, 0.006] reaches past the margin
    assert sq.decide(0.0, 0.0, 2.5, 0.005) == "equivalent"  # two models that never disagree


def _population(rng, styles: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits of correctness per test example for two variants: shared difficulty (accuracy about 0.95), and
    with `styles` > 0 opposite per-example leanings that leave both equally accurate on average."""
    difficulty = rng.normal(4.0, 1.5, EXAMPLES)
    lean = rng.normal(0.0, styles, EXAMPLES) if styles else np.zeros(EXAMPLES)
    return difficulty + lean, difficulty - lean


def _trials(rng, logits: np.ndarray, seeds: int, seed_noise: float, shift: float = 0.0) -> np.ndarray:
    """bool [seeds, N]: one variant's trials, each seed shifting the whole model (training noise) by
    N(0, seed_noise) in logit, plus `shift` (a true difference)."""
    lg = logits[None, :] + shift + rng.normal(0.0, seed_noise, (seeds, 1))
    return rng.random(lg.shape) < 1 / (1 + np.exp(-lg))


def _run(rng, variants: dict[str, np.ndarray], first: int, most: int, alpha: float, margin: float) -> dict:
    """The adaptive procedure on simulated trials: the leader chosen after the first seeds, then rounds of one
    seed for the leader and every undecided contender, as the pipeline runs them. `variants` maps a name to
    its bool [most, N] trials, revealed seed by seed."""
    seen = {name: {s: trials[s] for s in range(first)} for name, trials in variants.items()}
    leader = max(seen, key=lambda name: np.mean(list(seen[name].values())))
    record = sq.start(leader, [n for n in variants if n != leader], first, most, alpha, margin)
    seeds = first
    while True:
        sq.advance(record, seen, seeds)
        training = sq.to_train(record)
        if not training:
            return record
        for name in training:
            seen[name][seeds] = variants[name][seeds]
        seeds += 1


@pytest.mark.parametrize(
    "first, seed_noise, styles",
    [(1, 0.0, 0.0), (2, 0.15, 0.0), (2, 0.3, 0.0), (3, 0.1, 0.8)],
    ids=["test-noise-only", "training-noise", "large-training-noise", "different-errors-same-accuracy"],
)
def test_identical_optimizers_are_declared_different_at_most_alpha_of_the_time(first, seed_noise, styles):
    """Three variants with the same accuracy distribution, the leader picked as the best after the first seeds
    (the selection a real run makes), up to 5 seeds: a 'better' or 'worse' decision anywhere in the family is a
    false positive."""
    rng = np.random.default_rng(7)
    alpha, errors = 0.05, 0
    for _ in range(SIMULATIONS):
        a, b = _population(rng, styles)
        variants = {name: _trials(rng, logits, 5, seed_noise) for name, logits in (("a", a), ("b", b), ("c", a))}
        record = _run(rng, variants, first, 5, alpha, 0.005)
        errors += any(d["decision"] in ("better", "worse") for d in record["decisions"].values())
    assert errors / SIMULATIONS <= alpha + margin_of_error(alpha, SIMULATIONS)


def test_power_is_what_the_design_predicts():
    """A true difference: the procedure decides 'better' about as often as `power` predicts for its last look
    from the population's own variance parts (earlier looks add a little; stopping for the wrong side, almost
    never)."""
    rng = np.random.default_rng(11)
    most, shift, noise = 5, 0.3, 0.1
    logits, _ = _population(rng, 0.0)
    # the population's variance parts, from many seeds of a large sample of trials
    many_a, many_b = _trials(rng, logits, 40, noise, shift), _trials(rng, logits, 40, noise)
    difference, test_set, training = sq.z_test(many_a, many_b)
    last = sq.schedule(2, most, 0.05)[-1]
    predicted = sq.power(difference, test_set, training, most, last["boundary"])
    assert 0.3 < predicted < 0.95  # the case tells powers apart
    wins = wrong = 0
    for _ in range(SIMULATIONS // 3):
        variants = {"a": _trials(rng, logits, most, noise, shift), "b": _trials(rng, logits, most, noise)}
        record = sq.start("a", ["b"], 2, most, 0.05, 0.0)  # the leader fixed: power of the one pair
        for seeds in range(2, most + 1):
            sq.advance(record, {n: {s: t[s] for s in range(seeds)} for n, t in variants.items()}, seeds)
            if record["stopped"]:
                break
        decision = record["decisions"].get("b", {}).get("decision")
        wins += decision == "better"
        wrong += decision == "worse"
    observed = wins / (SIMULATIONS // 3)
    assert predicted - 0.1 <= observed <= predicted + 0.15
    assert wrong == 0
    # what the report states for a pair left undecided: the difference the design finds with 80% power
    found = sq.detectable(test_set, training, most, last["boundary"])
    assert sq.power(found, test_set, training, most, last["boundary"]) == pytest.approx(0.8)


def test_a_decided_pair_trains_no_more_seeds():
    rng = np.random.default_rng(3)
    logits, _ = _population(rng, 0.0)
    shifts = (("strong", 1.0), ("weak", -1.5), ("close", 0.99))
    trials = {name: _trials(rng, logits, 6, 0.05, shift) for name, shift in shifts}
    seen = {name: {s: t[s] for s in range(4)} for name, t in trials.items()}
    record = sq.start("strong", ["weak", "close"], 4, 6, 0.05, 0.005)
    sq.advance(record, seen, 4)
    assert record["decisions"]["weak"] == {"decision": "better", "look": 4, "seeds": 4}
    assert sq.to_train(record) == ["strong", "close"]
    assert record["stopped"] is None
    sq.advance(record, seen, 6)  # the budget: whatever is left stays undecided
    assert record["stopped"] in ("budget", "decided")
    assert sq.to_train(record) == []
