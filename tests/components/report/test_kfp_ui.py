"""What the report step shows in the KFP UI: scalar metrics and the best confusion matrix, from the realistic
run's rows."""

from __future__ import annotations

import math

from report_inputs import by_name

from optbench.components.report.kfp_ui import best_confusion_matrix, metric_name, scalar_metrics
from optbench.components.shared import datasets


def test_kfp_ui_metrics_and_confusion_matrix(report):
    rows, _ = report
    metrics = scalar_metrics(rows)
    adam = by_name(rows)["adam"]
    assert metrics["adam_test_accuracy"] == adam["test_accuracy"]
    assert metrics["adam_test_accuracy_ci_low"] == adam["test_accuracy_ci_low"]
    assert metrics["sgd_train_seconds"] == by_name(rows)["sgd"]["train_seconds"]
    assert metrics["sgd_cost_seconds"] == by_name(rows)["sgd"]["cost_seconds"]
    assert metrics["sgd_step_seconds"] == 0.024
    assert not any(k.startswith("adadelta") for k in metrics)  # diverged: no numbers
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metric_name("sgd bs=1024", "test_loss") == "sgdbs1024_test_loss"
    best = best_confusion_matrix(rows, list(datasets.FASHION_MNIST.class_names))
    assert best["variant"] == "adam" and best["categories"][9] == "Ankle boot"
    assert sum(map(sum, best["matrix"])) == 3 * 10_000  # three seeds' passes over the test split
