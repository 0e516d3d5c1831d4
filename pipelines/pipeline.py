"""The optimizer comparison as one KFP pipeline:

    ingest ─┐
            ├─> ParallelFor(trials: train) ─> evaluate (fan-in) ─┬─> report
    init ───┘                                                    └─> ParallelFor(trials: metrics)

A trial is one training run (an optimizer variant and a seed, docs/artifacts.md);
the CLI expands a suite into the `trials` parameter. The same definition runs
locally (`kfp.local`, `optbench run`) and compiles to the IR YAML a Kubeflow
cluster runs; `build_pipeline(configure)` lets the compiler attach cluster
settings (images, GPUs, resources) to each step without touching the DAG.
"""
from typing import Callable, List, Optional

from kfp import dsl

from pipelines import components as c

PIPELINE_NAME = "optbench-compare"
Configure = Callable[[dsl.PipelineTask, str], None]


def build_pipeline(configure: Optional[Configure] = None, parallelism: int = 0):
    """The pipeline function; `configure(task, step)` is called on every task it creates.

    `parallelism` caps how many trials train at once (0: no cap beyond the runner's own).
    """

    def step(task: dsl.PipelineTask, name: str, display: str) -> dsl.PipelineTask:
        task.set_display_name(display)
        if configure is not None:
            configure(task, name)
        return task

    @dsl.pipeline(name=PIPELINE_NAME, description="Which optimizer should I train this network with?")
    def compare_optimizers(
        trials: List[str],
        seeds: List[int] = [0],
        model_name: str = "cnn",
        data_source: str = "auto",
        epochs: int = 10,
        validation_fraction: float = 0.1,
        train_limit: int = 0,
        test_limit: int = 0,
        baseline_trial: str = "",
        thresholds_json: str = "{}",
        train_threads: int = 0,
        mixed_precision: bool = False,
        xla: bool = False,
        beam_args: List[str] = [],
        settings_json: str = "{}",
    ) -> dsl.Artifact:
        ingest = step(c.ingest(data_source=data_source, validation_fraction=validation_fraction,
                               train_limit=train_limit, test_limit=test_limit, seed=0, beam_args=beam_args),
                      "ingest", "ingest (Beam)")
        init = step(c.init_model(model_name=model_name, seeds=seeds), "init", "initial weights")
        with dsl.ParallelFor(trials, parallelism=parallelism) as trial:
            train = step(c.train(dataset=ingest.outputs["dataset"], initial=init.outputs["initial"],
                                 trial_json=trial, epochs=epochs, threads=train_threads,
                                 mixed_precision=mixed_precision, xla=xla), "train", "train (Keras)")
        # One Collected per consumer: KFP 2.17 fails to compile a Collected object shared by two tasks.
        evaluation = step(c.evaluate(dataset=ingest.outputs["dataset"], models=dsl.Collected(train.outputs["model"]),
                                     baseline_trial=baseline_trial, thresholds_json=thresholds_json,
                                     beam_args=beam_args), "evaluate", "evaluate (TFMA)")
        with dsl.ParallelFor(trials) as trial:
            step(c.trial_metrics(evaluation=evaluation.outputs["evaluation"], trial_json=trial),
                 "metrics", "metrics (KFP UI)")
        report = step(c.report(dataset=ingest.outputs["dataset"], models=dsl.Collected(train.outputs["model"]),
                               evaluation=evaluation.outputs["evaluation"], settings_json=settings_json),
                      "report", "report")
        return report.outputs["report_dir"]

    return compare_optimizers


compare_optimizers = build_pipeline()
