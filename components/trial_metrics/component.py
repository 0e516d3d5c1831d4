"""The trial_metrics step as a KFP component: a thin wrapper around `run_trial_metrics`, beside it."""

from kfp.dsl import Artifact, ClassificationMetrics, Input, Metrics, Output

from optbench.components.image import component


@component
def trial_metrics(
    evaluation: Input[Artifact],
    trial_json: str,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
):
    """One trial's test metrics and confusion matrix, as artifacts the KFP UI shows and compares."""
    import json

    from optbench.components.shared.artifacts import persist_metadata
    from optbench.components.trial_metrics.trial_metrics import run_trial_metrics

    found = run_trial_metrics(evaluation.path, json.loads(trial_json)["trial"])
    if found is None:  # a confirming trial the tune step skipped: nothing was evaluated
        persist_metadata(metrics)
        persist_metadata(confusion)
        return
    scalars, categories, matrix = found
    for key, value in scalars.items():
        metrics.log_metric(key, value)
    confusion.log_confusion_matrix(categories, matrix)
    persist_metadata(metrics)
    persist_metadata(confusion)
