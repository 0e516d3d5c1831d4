"""Seeds until decided: a group-sequential test of every contender against the leader, after each round of seeds.

Adding seeds until a test passes and then testing as if their number had
been fixed inflates false positives: each look is one more chance to cross
by luck. A group-sequential design spends the error rate over the looks
instead. Here the looks are planned in advance: the first after the run's
own seeds, then one after each added seed, up to `max_seeds` (information
fraction t = seeds / max_seeds). How much of alpha each look may spend is
the Lan-DeMets O'Brien-Fleming-type function alpha(t) = 2 - 2 Phi(z[1 -
alpha/2] / sqrt(t)): almost nothing early, when a few seeds could fool us,
nearly all of it at the last look, whose boundary stays close to the
fixed-sample one. The boundaries come from the joint normal law of the
looks' z statistics, whose correlation is sqrt(t_j / t_k) (the canonical
"independent increments" form). Every seed's trials are scored on the same
test examples, so the test-set part of the variance does not shrink with
seeds; that makes consecutive looks more alike than seeds alone say, and
boundaries computed from seed fractions are then conservative, never
liberal.

Each contender is tested against the leader (the best after the run's
own seeds, fixed from then on so that every pair is one test through all
looks) at alpha / m, m the number of pairs among all the variants
(Bonferroni): the data chose the leader, so any pair could have been the
one tested, and with m the contenders alone the simulations in tests/ found
the family's error above alpha. At each look a pair is decided:
- better or worse, when |z| reaches the look's boundary;
- equivalent, when its repeated confidence interval, the difference plus or
  minus the boundary times its standard error (whose coverage holds at every
  look at once), lies within plus or minus the margin;
- otherwise it stays undecided, and its two variants train one more seed.
The first look needs two seeds: with one, training noise cannot be
measured, and a run of one seed first trains a second of every variant.
A decided pair keeps its decision and trains no more seeds. The run stops
when every pair is decided, or with the last look (the budget).

The z statistic is the seed-averaged accuracy difference over a standard
error from both sources of randomness, the test set's and training's,
against a t quantile (`z_test`).

Pure numpy/scipy: the decide and report steps call this without TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri, stdtrit

from optbench.components.results.significance import POWER, variance_components

SPENDING = "O'Brien-Fleming-type alpha spending, Lan-DeMets"
UNDECIDED = "undecided"
_GRID = 401  # points of the density grid between the boundaries of a look
_MAX_Z = 12.0  # a boundary that spends (almost) nothing


def spent(fraction: float, alpha: float) -> float:
    """The share of `alpha` spent by information fraction `fraction` (0 < fraction <= 1), two-sided."""
    return float(2 - 2 * ndtr(ndtri(1 - alpha / 2) / math.sqrt(fraction)))


def _crossing(b: float, step: float, grid: np.ndarray | None, mass: np.ndarray | None) -> float:
    """The chance that B, from the surviving probability `mass` at the points `grid` of the previous look (none:
    B starts at 0), moves by N(0, step) to |B| >= b."""
    sd = math.sqrt(step)
    if grid is None or mass is None:
        return float(2 * ndtr(-b / sd))
    return float(np.sum(mass * (ndtr((-b - grid) / sd) + 1 - ndtr((b - grid) / sd))))


def _excess(b: float, step: float, grid: np.ndarray | None, mass: np.ndarray | None, increment: float) -> float:
    return _crossing(b, step, grid, mass) - increment


def boundaries(fractions: list[float], alpha: float) -> list[float]:
    """Two-sided z boundaries of looks at increasing information `fractions` (the last 1), spending `alpha`.

    Numerical recursion on the B-value scale (B(t) = z sqrt(t), Brownian motion): the density of B at a look,
    restricted to the paths that crossed no earlier boundary, is the previous one convolved with the
    increment's normal law; each boundary is the one that crosses with exactly the look's alpha increment.
    """
    bounds: list[float] = []
    grid: np.ndarray | None = None
    mass: np.ndarray | None = None  # the surviving probability at each point of `grid` (density x trapezoid weight)
    previous_t = previous_spent = 0.0
    for t in fractions:
        increment, step = spent(t, alpha) - previous_spent, t - previous_t
        top = _MAX_Z * math.sqrt(t)
        state = (step, grid, mass)
        b = top if increment <= _crossing(top, *state) else brentq(_excess, 0.0, top, (*state, increment), 1e-10)
        points = np.linspace(-b, b, _GRID)
        start = np.zeros(1) if grid is None or mass is None else grid
        weight = np.ones(1) if grid is None or mass is None else mass
        density = (
            np.exp(-((points[:, None] - start[None, :]) ** 2) / (2 * step)) @ weight / math.sqrt(2 * math.pi * step)
        )
        trapezoid = np.full(_GRID, 2 * b / (_GRID - 1))
        trapezoid[[0, -1]] /= 2
        grid, mass = points, density * trapezoid
        bounds.append(b / math.sqrt(t))
        previous_t, previous_spent = t, spent(t, alpha)
    return bounds


def schedule(first_seeds: int, max_seeds: int, alpha: float) -> list[dict]:
    """The planned looks: after the run's `first_seeds` (at least 2: one seed cannot measure training noise), then
    after each added seed up to `max_seeds`, each with its information fraction and two-sided boundary at
    `alpha`."""
    if not 1 <= first_seeds <= max_seeds or max_seeds < 2:
        raise ValueError(f"max_seeds must be at least 2 and at least the run's seeds ({first_seeds}), got {max_seeds}")
    seeds = list(range(max(2, first_seeds), max_seeds + 1))
    fractions = [s / max_seeds for s in seeds]
    return [
        {"seeds": s, "fraction": f, "boundary": b} for s, f, b in zip(seeds, fractions, boundaries(fractions, alpha))
    ]


def z_test(leader: np.ndarray, other: np.ndarray) -> tuple[float, float, float]:
    """(difference, test set's variance, training's variance per seed) of the seed-averaged test accuracy, leader
    minus other; bool [S, N] each (S >= 2), row s of both from the same seed. The difference's standard error
    with S seeds is sqrt(test set's + training's / S) (`significance.variance_components` says how each is
    estimated).

    Training's part rests on S - 1 degrees of freedom: with 2 or 3 seeds it is itself uncertain, and a normal
    boundary would cross too often, so the boundary becomes the t quantile of the same level at S - 1 degrees
    of freedom (the simulations in tests/ found Satterthwaite's more generous count too liberal: a chance
    estimate of the test set's part near zero is exactly when the sum is least sure).
    """
    if leader.shape[0] < 2:
        raise ValueError("a sequential look needs at least 2 seeds: one cannot measure training noise")
    d = leader.astype(np.int8) - other.astype(np.int8)
    training, test_set, _ = variance_components(d)
    return float(d.mean()), test_set, training


def power(difference: float, test_set: float, training: float, seeds: int, boundary: float) -> float:
    """The chance that a true `difference` crosses a last look at `seeds` seeds with normal `boundary`, given the
    variance parts `z_test` estimates (earlier looks only add to it, a little)."""
    se = math.sqrt(test_set + training / seeds)
    return float(ndtr(abs(difference) / se - t_boundary(boundary, seeds - 1))) if se > 0 else 1.0


def detectable(test_set: float, training: float, seeds: int, boundary: float) -> float:
    """The difference the design finds with POWER by its last look at `seeds` seeds (`power`'s inverse): what a
    pair still undecided at the end could not have told apart."""
    return float((t_boundary(boundary, seeds - 1) + ndtri(POWER)) * math.sqrt(test_set + training / seeds))


def t_boundary(boundary: float, df: float) -> float:
    """The normal `boundary` as the t quantile of the same two-sided level at `df` degrees of freedom."""
    return float(stdtrit(df, ndtr(boundary)))


def decide(difference: float, se: float, boundary: float, margin: float) -> str:
    """One pair at one look: better / worse (|difference / se| at the boundary), equivalent (the repeated
    confidence interval within +-margin) or undecided."""
    z = difference / se if se > 0 else 0.0
    if abs(z) >= boundary:
        return "better" if z > 0 else "worse"
    if margin > 0 and -margin < difference - boundary * se and difference + boundary * se < margin:
        return "equivalent"
    return UNDECIDED


def look(
    correct: dict[str, dict[int, np.ndarray]],
    leader: str,
    planned: dict,
    last: dict,
    margin: float,
    decided: dict[str, dict],
) -> dict:
    """Test every contender not yet decided against `leader` at the `planned` look (one of `schedule`'s, whose
    `last` look is the budget).

    `correct` is variant -> seed -> bool [N]; a pair uses the seeds both have. `decided` (variant -> decision
    record) holds the decisions of earlier looks and gains this look's; returns the look's record. Each pair also
    carries the difference the design could detect by its last look, from this look's variance estimates.
    """
    pairs = []
    for other in sorted(set(correct) - {leader} - set(decided)):
        seeds = sorted(set(correct[leader]) & set(correct[other]))
        if len(seeds) < 2:
            continue
        difference, test_set, training = z_test(
            np.stack([correct[leader][s] for s in seeds]), np.stack([correct[other][s] for s in seeds])
        )
        se = math.sqrt(test_set + training / len(seeds))
        boundary = t_boundary(planned["boundary"], len(seeds) - 1)
        decision = decide(difference, se, boundary, margin)
        pairs.append(
            {
                "other": other,
                "seeds": len(seeds),
                "difference": difference,
                "se": se,
                "z": difference / se if se > 0 else 0.0,
                "boundary": boundary,
                "variance": {"test_set": test_set, "training": training},
                "detectable": detectable(test_set, training, last["seeds"], last["boundary"]),
                # an accuracy difference lies in [-1, 1], however wide a 2-seed t quantile makes the interval
                "interval": [max(-1.0, difference - boundary * se), min(1.0, difference + boundary * se)],
                "decision": decision,
            }
        )
        if decision != UNDECIDED:
            decided[other] = {"decision": decision, "look": planned["seeds"], "seeds": len(seeds)}
    return {**planned, "pairs": pairs}


def start(leader: str, contenders: list[str], first_seeds: int, max_seeds: int, alpha: float, margin: float) -> dict:
    """The sequential record of a run before its first look: the leader, the planned looks and the error split
    (`alpha` over every pair of the variants, Bonferroni)."""
    per_pair = alpha / max(1, len(contenders) * (len(contenders) + 1) // 2)
    return {
        "leader": leader,
        "contenders": sorted(contenders),
        "first_seeds": first_seeds,
        "max_seeds": max_seeds,
        "alpha": alpha,
        "alpha_per_pair": per_pair,
        "correction": "bonferroni",
        "spending": SPENDING,
        "margin": margin,
        "planned": schedule(first_seeds, max_seeds, per_pair),
        "looks": [],
        "decisions": {},
        "stopped": None,
    }


def advance(record: dict, correct: dict[str, dict[int, np.ndarray]], seeds: int) -> dict:
    """Make the look planned at `seeds` seeds, if any, on `correct`; sets `stopped` ("decided", or "budget" at
    `max_seeds`) when no further round is to run; a stopped record stays as it is. Returns the record."""
    if record["stopped"]:
        return record
    planned = next((p for p in record["planned"] if p["seeds"] == seeds), None)
    if planned is not None:
        record["looks"].append(
            look(correct, record["leader"], planned, record["planned"][-1], record["margin"], record["decisions"])
        )
    if all(c in record["decisions"] for c in record["contenders"]):
        record["stopped"] = "decided"
    elif seeds >= record["max_seeds"]:
        record["stopped"] = "budget"
    return record


def to_train(record: dict) -> list[str]:
    """The variants the next round trains one more seed of: none once stopped, else the leader and every
    contender still undecided."""
    if record["stopped"]:
        return []
    return [record["leader"], *(c for c in record["contenders"] if c not in record["decisions"])]
