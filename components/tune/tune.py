"""Tune-then-confirm: the choice between the tuning phase and the confirming one.

Optimizer rankings follow the tuning protocol (DeepOBS; Choi et al. 2019;
Schmidt et al. 2021): Keras's default learning rates answer "which optimizer
at its defaults", a narrower question than users think. So with
`protocol: tune-confirm` the learning-rate grid is trained on the first seed
only, each optimizer's best learning rate is chosen on validation accuracy
(never on test), and then its default and its tuned learning rate are run on
every seed. The report shows both, with intervals over seeds, and the
sensitivity of each optimizer to its learning rate.

What the confirming trials read of the choice is `shared.tuning`.
"""

from __future__ import annotations

import json
import math

from optbench.components.shared.timing import timed
from optbench.components.shared.tuning import family_of, write_tuning


def _last_val_accuracy(history: dict) -> float | None:
    epochs = history.get("epochs") or []
    value = epochs[-1].get("val_accuracy") if epochs else None
    if history.get("status") == "ok" and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


@timed("tune")
def run_tune(histories: list[dict], plan: dict, tuning_dir: str) -> list[str]:
    """The tune step: write the choice and return the confirming round's trials.

    Every protocol has the confirming round, so the pipeline has one shape whatever the suite asks (the plan
    decides the protocol at run time, and a loop over nothing would fail kfp.local). Under tune-confirm it is
    every variant on every seed, of which the confirming trials train; under the default protocol it is the first
    trial alone, which finds nothing chosen and skips at once.
    """
    pool = plan["confirm_pool"]
    write_tuning(tuning_dir, tuning(histories) if pool else {"protocol": plan["suite"]["protocol"]})
    return [json.dumps(t) for t in (pool or plan["trials"][:1])]


def tuning(histories: list[dict]) -> dict:
    """The grid per optimizer and the learning rate chosen: the best final validation accuracy, the default on
    a tie; an optimizer that diverged at every rate keeps its default."""
    grid: dict[str, list[dict]] = {}
    for h in histories:
        grid.setdefault(family_of(h), []).append(
            {
                "variant": h["variant"],
                "learning_rate": h["learning_rate"],
                "default": not h.get("lr_sweep"),
                "val_accuracy": _last_val_accuracy(h),
                "status": h.get("status"),
            }
        )
    chosen = {}
    for family, points in grid.items():
        points.sort(key=lambda p: p["learning_rate"])
        scored = [p for p in points if p["val_accuracy"] is not None]
        best = max(scored, key=lambda p: (p["val_accuracy"], p["default"])) if scored else None
        chosen[family] = (best or next(p for p in points if p["default"]))["variant"]
        for p in points:
            p["chosen"] = p["variant"] == chosen[family]
    seeds = sorted({h["seed"] for h in histories})
    return {"protocol": "tune-confirm", "tuning_seeds": seeds, "grid": grid, "chosen": chosen}
