"""The report step as a KFP component: a thin wrapper around `run_report`, beside it."""

from typing import List, Optional

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from optbench.components.image import component


@component
def report(
    dataset: Input[Dataset],
    models: Input[List[Model]],
    confirmed: Input[List[Model]],
    evaluation: Input[Artifact],
    step_cost: Input[Artifact],
    settings: Input[Artifact],
    tuning: Input[Artifact],
    mlflow_uri: str,
    history_root: str,
    report_dir: Output[Artifact],
    markdown: Output[Markdown],
    html: Output[HTML],
    comparison: Output[Metrics],
    best_confusion: Output[ClassificationMetrics],
    rounds: Optional[Input[Artifact]] = None,  # noqa: UP045 - KFP reads typing.Optional, not X | None
):
    """Tables, plots, verdict and what changed since the suite's last run: report.md, report.html,
    comparison.csv/json; run-level metrics for KFP's Compare page; the trials in MLflow when `mlflow_uri` names a
    tracking store; an alert to the webhook the environment names."""
    import os

    from optbench.components.report.kfp_ui import best_confusion_matrix, scalar_metrics
    from optbench.components.report.report import run_report
    from optbench.components.shared import notify
    from optbench.components.shared.artifacts import (
        final_models,
        persist_metadata,
        read_plan,
        read_sequential,
        round_models,
        stats_path,
    )
    from optbench.components.shared.datasets import class_names
    from optbench.components.shared.files import read_json
    from optbench.components.shared.tuning import tuned

    def alert(run: dict) -> str:
        """Tell the webhook how the run ended; the report shows what it answered."""
        event = "changed" if run["changed"] else "finished"
        said = notify.message(event, run["suite"], run["run_id"], run["verdict"], run["changes"], report=html.uri)
        return notify.post(said)

    added = rounds.path if rounds else None
    rows = run_report(
        dataset.path,
        final_models([m.path for m in models], [m.path for m in confirmed]) + round_models(added),
        evaluation.path,
        step_cost.path,
        read_plan(settings.path)["settings"],
        report_dir.path,
        markdown=markdown.path,
        html=html.path,
        tuning=tuned(tuning.path),
        mlflow_uri=mlflow_uri,
        history_root=history_root,
        sequential=read_sequential(added),
        notify=alert if os.environ.get(notify.ENV) else None,  # the URL is a secret: never a parameter
    )
    for key, value in scalar_metrics(rows).items():
        comparison.log_metric(key, value)
    best = best_confusion_matrix(rows, class_names(read_json(stats_path(dataset.path))))
    if best is not None:
        best_confusion.log_confusion_matrix(best["categories"], best["matrix"])
        best_confusion.metadata["variant"] = best["variant"]
    persist_metadata(comparison)
    persist_metadata(best_confusion)
