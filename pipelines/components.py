"""Thin KFP component wrappers: each calls one step's logic in components/.

Kept deliberately free of logic: everything here is typed plumbing between
KFP artifacts and the plain functions, which are tested on their own.
Imports live inside the functions because KFP ships each function's source
to its own process (or container) and runs it there.
"""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

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
def init_model(model_name: str, seed: int, initial: Output[Model]):
    """Build the model once and save the initial weights every optimizer starts from."""
    from components.init_model.init_model import run_init

    initial.metadata.update(run_init(model_name, seed, initial.path))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(dataset: Input[Dataset], initial: Input[Model], optimizer: str, epochs: int, batch_size: int,
          seed: int, threads: int, model: Output[Model], metrics: Output[Metrics]):
    """Keras: train one model with one optimizer from the shared initial weights."""
    from components.train.train import run_train

    history = run_train(dataset.path, initial.path, optimizer, model.path, epochs=epochs,
                        batch_size=batch_size, seed=seed, threads=threads or None)
    model.metadata.update({"optimizer": optimizer, "status": history["status"]})
    last = history["epochs"][-1] if history["epochs"] else {}
    for key in ("val_accuracy", "val_loss"):
        if last.get(key) is not None:
            metrics.log_metric(f"{optimizer}_{key}", last[key])
    metrics.log_metric(f"{optimizer}_train_seconds", history["train_seconds"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(dataset: Input[Dataset], models: Input[List[Model]], baseline: str, beam_args: List[str],
             evaluation: Output[Artifact]):
    """TFMA: one analysis over every model on the test split, against the baseline."""
    from components.common.artifacts import saved_models_by_optimizer
    from components.evaluate.evaluate import evaluate as run_evaluate

    run_evaluate(saved_models_by_optimizer([m.path for m in models]), dataset.path, evaluation.path,
                 baseline=baseline or None, beam_args=beam_args)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def report(dataset: Input[Dataset], models: Input[List[Model]], evaluation: Input[Artifact], settings_json: str,
           report_dir: Output[Artifact], markdown: Output[Markdown], html: Output[HTML]):
    """Tables, plots, verdict: report.md, report.html, comparison.csv/json."""
    import json
    import shutil

    from components.common.artifacts import history_paths, stats_path, summary_path
    from components.report.build import build_report, load_inputs

    histories, summary, stats = load_inputs(history_paths([m.path for m in models]),
                                            summary_path(evaluation.path), stats_path(dataset.path))
    build_report(histories, summary, stats, json.loads(settings_json), report_dir.path)
    shutil.copyfile(f"{report_dir.path}/report.md", markdown.path)
    shutil.copyfile(f"{report_dir.path}/report.html", html.path)
