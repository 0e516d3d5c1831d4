"""One comparison row per variant, aggregated over its seeds, and the terminal table.

Pure functions over plain dicts (no files, no plotting), so the CLI can print
`format_table` after a run and the tests can check every number directly.
Every metric passes through `finite`: a diverged trial's NaN losses become
None here, once, so no NaN can reach comparison.json, a chart or a table.

A trial (one seed of one variant) counts as diverged when its history says
so (or says it hit a numerical fault: its optimizer's update turned a weight
non-finite before the loss ever rose), when any of its losses is not a
number, or when the evaluation saw non-finite outputs. Its test metrics are
never used: TFMA scores a NaN model as predicting class 0 everywhere, an
accuracy that means nothing. A variant's
figures are over its non-diverged trials only; its status says how many
diverged ("partial" when some did, "diverged" when all did).

A trial the median stopping rule stopped (opt-in) keeps its curves up to the
epoch it stopped at, but has no test metrics and no blessing: it never
finished, so it is never scored, nor counted as a loser of a significance
test. A variant whose every trial was stopped has the status "stopped".

Costs: a trial's `cost_seconds` is the steps it took times its variant's
per-step cost, measured alone by the step-cost step,
so no neighbour moves it; time to accuracy is counted the same way. Its
`train_seconds` is the wall time it took, which on a shared machine says as
much about the trials that ran beside it as about the optimizer.
"""

from __future__ import annotations

import math
from statistics import mean, stdev
from typing import Any

from scipy.special import stdtrit  # the Student t quantile; scipy.stats would take 3x longer to import

from optbench.components.question.suites import steps_per_epoch
from optbench.components.results.row import NON_FINITE, ComparisonRow
from optbench.components.shared.tuning import family_of

CONFIDENCE = 0.95

# Row list -> history.json epoch field; averaged over seeds epoch by epoch.
SERIES = {
    "val_accuracy": "val_accuracy",
    "val_loss": "val_loss",
    "train_accuracy": "accuracy",
    "train_loss": "loss",
    "epoch_seconds": "seconds",
}
BANDED = ("val_accuracy", "val_loss")  # series that also get a per-epoch standard deviation (the plot's band)

# What a row keeps of each seed (comparison.json's per_seed), beside its last validation accuracy.
SEED_KEYS = (
    "seed",
    "trial",
    "diverged",
    "diverged_at_epoch",
    "fault",
    "stopped",
    "stopped_at_epoch",
    "steps",
    "cost_seconds",
    "train_seconds",
    "test_accuracy",
    "test_loss",
    "blessed",
)


def finite(x: Any) -> float | None:
    """The number as a float, or None when missing or non-finite (NaN, inf, null)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _finite_values(values: list) -> list[float]:
    return [v for v in (finite(x) for x in values) if v is not None]


def mean_or_none(values: list) -> float | None:
    """The mean of the finite values, None when there are none."""
    xs = _finite_values(values)
    return mean(xs) if xs else None


def std_or_none(values: list) -> float | None:
    """The sample standard deviation of the finite values, None with fewer than two."""
    xs = _finite_values(values)
    return stdev(xs) if len(xs) > 1 else None


def spread(values: list) -> dict:
    """Mean, sample standard deviation and 95% Student-t interval of the finite values.

    The t interval, not mean +/- 1.96 sd: with 3 seeds the normal quantile would make the
    interval about half as wide as it should be. One value: a mean, no spread, no interval.
    """
    xs = _finite_values(values)
    m, s = mean_or_none(xs), std_or_none(xs)
    if s is None:
        return {"mean": m, "std": None, "ci_low": None, "ci_high": None}
    half = stdtrit(len(xs) - 1, (1 + CONFIDENCE) / 2) * s / math.sqrt(len(xs))
    return {"mean": m, "std": s, "ci_low": m - half, "ci_high": m + half}


def variant_of(history: dict) -> str:
    """The name the report compares: the optimizer, with the batch size or learning rate that tells it apart."""
    return history["variant"]


def trial_of(history: dict) -> str:
    return history["trial"]


def comparison_rows(
    histories: list[dict], evaluation: dict | None, step_cost: dict | None = None, tuned: dict | None = None
) -> list[dict]:
    """One row per variant, best mean test accuracy first; variants without test metrics last.

    `step_cost` is the step-cost step's step_cost.json; without it (or for a variant it lacks) costs are None.
    `tuned` (optimizer -> variant) is the tune step's choice under tune-confirm; without it a learning-rate
    sweep's tuned variant is chosen here, on the same validation accuracy.
    """
    if not histories:
        raise ValueError("no training histories given: the report compares at least one optimizer")
    if not all(isinstance(h.get(key), str) and h[key] for h in histories for key in ("variant", "trial")):
        raise ValueError("every history needs a non-empty 'variant' and 'trial' (the train step writes both)")
    keys = [(variant_of(h), h.get("seed")) for h in histories]
    repeated = sorted({f"{v} seed {s}" for v, s in keys if keys.count((v, s)) > 1})
    if repeated:
        raise ValueError(f"more than one history for {', '.join(repeated)}")
    models = (evaluation or {}).get("models") or {}
    groups: dict[str, list[dict]] = {}
    for h in histories:
        groups.setdefault(variant_of(h), []).append(h)
    per_step = {name: v.get("seconds_per_step") for name, v in ((step_cost or {}).get("variants") or {}).items()}
    rows = [
        _row(sorted(hs, key=lambda h: h.get("seed") or 0), models, finite(per_step.get(variant)))
        for variant, hs in groups.items()
    ]
    if tuned is None:
        _mark_tuned(rows)
    else:
        for r in rows:
            r["tuned"] = tuned.get(r["family"]) == r["optimizer"]
    # Ties and untested runs fall back to final validation accuracy, then name, so the order is stable.
    return sorted(
        rows,
        key=lambda r: (
            r["test_accuracy"] is None,
            -(r["test_accuracy"] or 0.0),
            r["val_accuracy_last"] is None,
            -(r["val_accuracy_last"] or 0.0),
            r["optimizer"],
        ),
    )


def _trial(history: dict, metrics: dict | None, step_seconds: float | None) -> dict:
    """One seed's numbers, with the divergence verdict applied."""
    epochs = sorted(history.get("epochs") or [], key=lambda e: e["epoch"])
    series = {key: [finite(e.get(field)) for e in epochs] for key, field in SERIES.items()}
    # A null/NaN loss is divergence whatever the trainer concluded.
    bad = [e["epoch"] for e in epochs if any(k in e and finite(e[k]) is None for k in ("loss", "val_loss"))]
    m = metrics or {}
    diverged = history.get("status") in NON_FINITE or bool(bad) or m.get("finite_predictions") is False
    fault = history.get("fault") if history.get("status") == "fault" else None  # see components/train/fault.py
    stopped = not diverged and history.get("status") == "stopped"
    tested = bool(m) and not diverged and not stopped
    elapsed: list[float | None] = []
    total: float | None = 0.0
    for s in series["epoch_seconds"]:
        total = total + s if s is not None and total is not None else None
        elapsed.append(total)
    examples, batch = history.get("train_examples"), history.get("batch_size")
    per_epoch = (
        steps_per_epoch(batch, examples)
        if isinstance(examples, int) and isinstance(batch, int) and batch >= 0
        else None
    )
    epoch_cost = per_epoch * step_seconds if per_epoch and step_seconds is not None else None

    def cost(epoch: float | None) -> float | None:
        return None if epoch_cost is None or epoch is None else epoch * epoch_cost

    reached = {
        target: hit and {**hit, "steps": per_epoch and hit["epoch"] * per_epoch, "cost_seconds": cost(hit["epoch"])}
        for target, hit in (history.get("time_to_accuracy") or {}).items()
    }
    return {
        "seed": history.get("seed"),
        "trial": trial_of(history),
        "diverged": diverged,
        "diverged_at_epoch": (history.get("diverged_at_epoch") or next(iter(bad), None)) if diverged else None,
        "fault": fault and {"step": fault["step"], "weight": fault["weight"]},
        "stopped": stopped,
        "stopped_at_epoch": history.get("stopped_at_epoch") if stopped else None,
        "series": {**series, "elapsed_seconds": elapsed, "elapsed_cost_seconds": [cost(e["epoch"]) for e in epochs]},
        "train_seconds": finite(history.get("train_seconds")),
        "steps": per_epoch and per_epoch * len(epochs),
        "cost_seconds": cost(len(epochs)),
        "test_accuracy": finite(m.get("accuracy")) if tested else None,
        "test_loss": finite(m.get("loss")) if tested else None,
        "test_top3_accuracy": finite(m.get("top3_accuracy")) if tested else None,
        "test_macro_auc": finite(m.get("macro_auc")) if tested else None,
        "test_ece": finite((m.get("calibration") or {}).get("ece")) if tested else None,
        "test_accuracy_diff_vs_baseline": finite(m.get("accuracy_diff_vs_baseline")) if tested else None,
        "blessed": None if stopped or not m or m.get("blessed") is None else bool(m["blessed"]) and not diverged,
        "failed_thresholds": list(m.get("failed_thresholds") or []),
        "per_label_accuracy": m.get("per_label_accuracy") if tested else None,
        "confusion_matrix": m.get("confusion_matrix") if tested else None,
        "calibration": m.get("calibration") if tested else None,
        "time_to_accuracy": reached,
    }


def _row(histories: list[dict], models: dict, step_seconds: float | None) -> dict:
    first = histories[0]
    trials = [_trial(h, models.get(trial_of(h)), step_seconds) for h in histories]
    ok = [t for t in trials if not t["diverged"]]
    diverged = [t for t in trials if t["diverged"]]
    n = max((len(t["series"]["val_accuracy"]) for t in ok), default=0)

    def per_epoch(key: str) -> list[float | None]:
        return [mean_or_none([t["series"][key][i] for t in ok if i < len(t["series"][key])]) for i in range(n)]

    series = {key: per_epoch(key) for key in [*SERIES, "elapsed_seconds", "elapsed_cost_seconds"]}
    for key in BANDED:
        series[f"{key}_std"] = [
            std_or_none([t["series"][key][i] for t in ok if i < len(t["series"][key])]) for i in range(n)
        ]

    def at(key: str, epoch: int) -> float | None:
        return series[key][epoch - 1] if 1 <= epoch <= n else None

    stats = {
        key: spread([t[key] for t in ok]) for key in ("test_accuracy", "test_loss", "train_seconds", "cost_seconds")
    }
    evaluated = [t for t in trials if t["blessed"] is not None]
    return ComparisonRow(
        optimizer=variant_of(first),
        base_optimizer=first.get("optimizer"),
        family=family_of(first),
        status=("fault" if all(t["fault"] for t in diverged) else "diverged")
        if not ok
        else "stopped"
        if all(t["stopped"] for t in ok)
        else "partial"
        if diverged
        else "ok",
        seeds=[t["seed"] for t in trials],
        seeds_ok=len(ok),
        seeds_total=len(trials),
        diverged_seeds=[t["seed"] for t in diverged],
        faults=[{"seed": t["seed"], **t["fault"]} for t in diverged if t["fault"]],
        diverged_at_epoch=min((t["diverged_at_epoch"] for t in diverged if t["diverged_at_epoch"]), default=None),
        stopped_seeds=[t["seed"] for t in ok if t["stopped"]],
        stopped_at_epoch=min((t["stopped_at_epoch"] for t in ok if t["stopped"]), default=None),
        learning_rate=finite(first.get("learning_rate")),
        batch_size=first.get("batch_size"),
        lr_sweep=bool(first.get("lr_sweep")),
        backend=first.get("backend", "tensorflow"),
        packed_with=first.get("packed_with", 0),
        epochs=n,
        steps=mean_or_none([t["steps"] for t in ok]),
        step_seconds=step_seconds if ok else None,  # a diverged variant has no figures
        cost_seconds=stats["cost_seconds"]["mean"],
        cost_seconds_std=stats["cost_seconds"]["std"],
        train_seconds=stats["train_seconds"]["mean"],
        train_seconds_std=stats["train_seconds"]["std"],
        val_accuracy_epoch_1=at("val_accuracy", 1),
        val_loss_epoch_1=at("val_loss", 1),
        val_accuracy_epoch_5=at("val_accuracy", 5),
        val_loss_epoch_5=at("val_loss", 5),
        val_accuracy_last=at("val_accuracy", n),
        val_loss_last=at("val_loss", n),
        test_accuracy=stats["test_accuracy"]["mean"],
        test_accuracy_std=stats["test_accuracy"]["std"],
        test_accuracy_ci_low=stats["test_accuracy"]["ci_low"],
        test_accuracy_ci_high=stats["test_accuracy"]["ci_high"],
        test_loss=stats["test_loss"]["mean"],
        test_loss_std=stats["test_loss"]["std"],
        test_loss_ci_low=stats["test_loss"]["ci_low"],
        test_loss_ci_high=stats["test_loss"]["ci_high"],
        test_top3_accuracy=mean_or_none([t["test_top3_accuracy"] for t in ok]),
        test_macro_auc=mean_or_none([t["test_macro_auc"] for t in ok]),
        test_ece=mean_or_none([t["test_ece"] for t in ok]),
        test_accuracy_diff_vs_baseline=mean_or_none([t["test_accuracy_diff_vs_baseline"] for t in ok]),
        blessed=None if not evaluated else all(t["blessed"] for t in evaluated),
        failed_thresholds=[f"seed {t['seed']}: {reason}" for t in trials for reason in t["failed_thresholds"]],
        time_to_accuracy=_time_to_accuracy(ok),
        optimizer_state_bytes=finite(first.get("optimizer_state_bytes")),
        optimizer_state_ratio=finite(first.get("optimizer_state_ratio")),
        parameter_bytes=finite(first.get("parameter_bytes")),
        per_label_accuracy=_per_label(ok),
        confusion_matrix=_summed_matrix(ok),
        calibration=next((t["calibration"] for t in ok if t["calibration"]), None),
        per_seed=[
            {key: t[key] for key in SEED_KEYS}
            | {"val_accuracy_last": next((v for v in reversed(t["series"]["val_accuracy"]) if v is not None), None)}
            for t in trials
        ],
        val_accuracy=series["val_accuracy"],
        val_loss=series["val_loss"],
        train_accuracy=series["train_accuracy"],
        train_loss=series["train_loss"],
        epoch_seconds=series["epoch_seconds"],
        elapsed_seconds=series["elapsed_seconds"],
        elapsed_cost_seconds=series["elapsed_cost_seconds"],
        val_accuracy_std=series["val_accuracy_std"],
        val_loss_std=series["val_loss_std"],
    ).to_json()


def _time_to_accuracy(ok: list[dict]) -> dict:
    """Per validation-accuracy target: mean cost, wall seconds, steps and epoch over the seeds that reached it, and
    how many did."""
    targets = sorted({k for t in ok for k in t["time_to_accuracy"]}, key=float)
    out = {}
    for target in targets:
        hits = [t["time_to_accuracy"].get(target) for t in ok]
        hits = [h for h in hits if h]
        out[target] = {
            "cost_seconds": mean_or_none([h.get("cost_seconds") for h in hits]),
            "steps": mean_or_none([h.get("steps") for h in hits]),
            "seconds": mean_or_none([h.get("seconds") for h in hits]),
            "epoch": mean_or_none([h.get("epoch") for h in hits]),
            "reached": len(hits),
            "of": len(ok),
        }
    return out


def _per_label(ok: list[dict]) -> dict[str, float | None] | None:
    tables = [t["per_label_accuracy"] for t in ok if t["per_label_accuracy"]]
    if not tables:
        return None
    return {label: mean_or_none([table.get(label) for table in tables]) for label in tables[0]}


def _summed_matrix(ok: list[dict]) -> list[list[int]] | None:
    """The confusion matrices of the seeds added up: counts over every seed's pass over the test set."""
    matrices = [t["confusion_matrix"] for t in ok if t["confusion_matrix"]]
    if not matrices:
        return None
    return [[sum(m[i][j] for m in matrices) for j in range(len(matrices[0][i]))] for i in range(len(matrices[0]))]


def _mark_tuned(rows: list[dict]) -> None:
    """In a learning-rate sweep, mark per family the variant with the best final validation accuracy.

    Chosen on validation, never on test, so that the tuned variant's test accuracy stays an honest estimate.
    """
    families: dict[str, list[dict]] = {}
    for r in rows:
        families.setdefault(r["family"], []).append(r)
    for members in families.values():
        if len(members) < 2 or not any(r["lr_sweep"] for r in members):
            continue
        scored = [r for r in members if r["status"] == "ok" and r["val_accuracy_last"] is not None]
        if scored:
            max(scored, key=lambda r: (r["val_accuracy_last"], not r["lr_sweep"]))["tuned"] = True
