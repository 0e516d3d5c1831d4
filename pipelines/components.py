"""Thin KFP component wrappers: each calls one step's logic in components/.

Kept deliberately free of logic: everything here is typed plumbing between
KFP artifacts and the plain functions, which are tested on their own.
Imports live inside the functions because KFP ships each function's source
to its own process (or container) and runs it there.
"""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

# The image that runs the steps on a cluster; local runs use this machine's
# interpreter and ignore it.
IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(data_source: str, validation_fraction: float, train_limit: int, test_limit: int, seed: int,
           beam_args: List[str], dataset: Output[Dataset]):
    """Apache Beam: resolve and validate MNIST, write sharded TFRecords and stats."""
    from components.ingest.pipeline import run_ingest

    stats = run_ingest(data_source, dataset.path, validation_fraction=validation_fraction,
                       train_limit=train_limit or None, test_limit=test_limit or None, seed=seed,
                       beam_args=beam_args)
    dataset.metadata.update({split: s["count"] for split, s in stats["splits"].items()})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def init_model(model_name: str, seeds: List[int], initial: Output[Model]):
    """Build the model once per seed and save the initial weights every optimizer starts from."""
    from components.init_model.init_model import run_init

    infos = [run_init(model_name, int(seed), initial.path) for seed in seeds]
    initial.metadata.update({"model": model_name, "parameters": infos[0]["parameters"], "seeds": len(infos)})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(dataset: Input[Dataset], initial: Input[Model], trial_json: str, epochs: int, threads: int,
          mixed_precision: bool, xla: bool, model: Output[Model], metrics: Output[Metrics]):
    """Keras: train one trial (optimizer variant x seed) from its seed's initial weights."""
    import json

    from components.common.artifacts import persist_metadata
    from components.train.train import kfp_metrics, run_train

    history = run_train(dataset.path, initial.path, model.path, json.loads(trial_json), epochs=epochs,
                        threads=threads or None, mixed_precision=mixed_precision, xla=xla)
    model.metadata.update({k: history[k] for k in ("trial", "variant", "optimizer", "seed", "status")})
    for key, value in kfp_metrics(history).items():
        metrics.log_metric(key, value)
    persist_metadata(metrics)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(dataset: Input[Dataset], models: Input[List[Model]], baseline_trial: str, thresholds_json: str,
             beam_args: List[str], evaluation: Output[Artifact]):
    """TFMA: one analysis over every model on the test split, against the baseline."""
    import json

    from components.common.artifacts import saved_models_by_trial
    from components.evaluate.evaluate import evaluate as run_evaluate

    run_evaluate(saved_models_by_trial([m.path for m in models]), dataset.path, evaluation.path,
                 baseline=baseline_trial or None, thresholds=json.loads(thresholds_json), beam_args=beam_args)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def trial_metrics(evaluation: Input[Artifact], trial_json: str, metrics: Output[Metrics],
                  confusion: Output[ClassificationMetrics]):
    """One trial's test metrics and confusion matrix, as artifacts the KFP UI shows and compares."""
    import json

    from components.common.artifacts import persist_metadata, test_metrics_of

    scalars, categories, matrix = test_metrics_of(evaluation.path, json.loads(trial_json)["trial"])
    for key, value in scalars.items():
        metrics.log_metric(key, value)
    confusion.log_confusion_matrix(categories, matrix)
    persist_metadata(metrics)
    persist_metadata(confusion)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def report(dataset: Input[Dataset], models: Input[List[Model]], evaluation: Input[Artifact], settings_json: str,
           report_dir: Output[Artifact], markdown: Output[Markdown], html: Output[HTML],
           comparison: Output[Metrics], best_confusion: Output[ClassificationMetrics]):
    """Tables, plots, verdict: report.md, report.html, comparison.csv/json; run-level metrics for KFP's Compare page."""
    import json
    import shutil

    from components.common.artifacts import history_paths, persist_metadata, stats_path, summary_path
    from components.report.build import build_report, load_inputs, load_predictions
    from components.report.kfp_ui import best_confusion_matrix, scalar_metrics

    histories, summary, stats = load_inputs(history_paths([m.path for m in models]),
                                            summary_path(evaluation.path), stats_path(dataset.path))
    rows = build_report(histories, summary, stats, json.loads(settings_json), report_dir.path,
                        predictions=load_predictions(summary_path(evaluation.path)))
    for key, value in scalar_metrics(rows).items():
        comparison.log_metric(key, value)
    best = best_confusion_matrix(rows)
    if best is not None:
        best_confusion.log_confusion_matrix(best["categories"], best["matrix"])
        best_confusion.metadata["variant"] = best["variant"]
    persist_metadata(comparison)
    persist_metadata(best_confusion)
    shutil.copyfile(f"{report_dir.path}/report.md", markdown.path)
    shutil.copyfile(f"{report_dir.path}/report.html", html.path)
