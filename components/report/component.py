"""The report step as a KFP component: a thin wrapper around components/report/build.py."""

from typing import List

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from optbench.components.image import component


@component
def report(
    dataset: Input[Dataset],
    models: Input[List[Model]],
    evaluation: Input[Artifact],
    step_cost: Input[Artifact],
    tuning_json: str,
    settings_json: str,
    mlflow_uri: str,
    report_dir: Output[Artifact],
    markdown: Output[Markdown],
    html: Output[HTML],
    comparison: Output[Metrics],
    best_confusion: Output[ClassificationMetrics],
):
    """Tables, plots, verdict: report.md, report.html, comparison.csv/json; run-level metrics for KFP's Compare page;
    the trials in MLflow when `mlflow_uri` names a tracking store."""
    import json

    from optbench.components.report.build import build_report_from_artifacts
    from optbench.components.report.kfp_ui import best_confusion_matrix, scalar_metrics
    from optbench.components.shared.artifacts import persist_metadata, stats_path, trained
    from optbench.components.shared.datasets import class_names
    from optbench.components.shared.files import read_json

    rows = build_report_from_artifacts(
        dataset.path,
        trained([m.path for m in models]),
        evaluation.path,
        step_cost.path,
        json.loads(settings_json),
        report_dir.path,
        markdown=markdown.path,
        html=html.path,
        tuning=json.loads(tuning_json) if tuning_json else None,
        mlflow_uri=mlflow_uri,
    )
    for key, value in scalar_metrics(rows).items():
        comparison.log_metric(key, value)
    best = best_confusion_matrix(rows, class_names(read_json(stats_path(dataset.path))))
    if best is not None:
        best_confusion.log_confusion_matrix(best["categories"], best["matrix"])
        best_confusion.metadata["variant"] = best["variant"]
    persist_metadata(comparison)
    persist_metadata(best_confusion)
