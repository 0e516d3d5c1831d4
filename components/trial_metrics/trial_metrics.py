"""One trial's test figures out of the evaluation summary, as the KFP UI's Metrics and ClassificationMetrics take them.

A step of its own, one task per trial, so that every trial's metrics show in
the KFP UI on their own and can be compared across runs there.
"""

from __future__ import annotations

from optbench.components.shared.artifacts import summary_path
from optbench.components.shared.files import read_json
from optbench.components.shared.timing import timed


@timed("trial_metrics")
def run_trial_metrics(evaluation_dir: str, trial: str) -> tuple[dict[str, float], list[str], list[list[int]]] | None:
    """(scalar test metrics, class names, confusion matrix) of one trial, from the evaluation summary; None for a
    trial it does not hold (one the tune-confirm protocol skipped)."""
    summary = read_json(summary_path(evaluation_dir))
    model = summary["models"].get(trial)
    if model is None:
        return None
    scalars = {f"test_{k}": model[k] for k in ("accuracy", "loss", "top3_accuracy") if model.get(k) is not None}
    return scalars, summary["class_names"], model["confusion_matrix"]
