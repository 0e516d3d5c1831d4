"""What the report hands to the Kubeflow Pipelines UI beside report.html: scalar metrics and a confusion matrix.

Plain values only (this package imports no KFP): the pipeline's report wrapper
logs them on its Metrics and ClassificationMetrics outputs, so a run's
numbers show in the KFP run view and can be compared across runs there.
"""

from __future__ import annotations

import re

from optbench.components.report.verdict import candidate
from optbench.components.results.row import contenders

UI_KEYS = (
    "test_accuracy",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_loss",
    "cost_seconds",
    "step_seconds",
    "train_seconds",
)


def metric_name(variant: str, key: str) -> str:
    """`sgd bs=1024`, test_accuracy -> `sgdbs1024_test_accuracy`: KFP metric names without spaces or symbols."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '', variant)}_{key}"


def scalar_metrics(rows: list[dict]) -> dict[str, float]:
    """Per compared variant the test accuracy (with its CI over seeds), test loss, training cost, per-step cost
    and wall time; the numbers that exist only (a diverged variant has none)."""
    return {metric_name(r["optimizer"], key): r[key] for r in contenders(rows) for key in UI_KEYS if r[key] is not None}


def best_confusion_matrix(rows: list[dict], class_names: list[str]) -> dict | None:
    """The best variant's test confusion matrix (summed over seeds) as ClassificationMetrics takes it."""
    best = candidate(rows)
    if best is None or not best["confusion_matrix"]:
        return None
    return {
        "variant": best["optimizer"],
        "categories": class_names,
        "matrix": best["confusion_matrix"],
    }
