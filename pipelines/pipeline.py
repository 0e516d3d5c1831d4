"""The optimizer comparison as one KFP pipeline:

    ingest ─┐
            ├─> ParallelFor(trials: train) ─> step_cost ─> evaluate (fan-in) ─┬─> report
    init ───┘                                                                 └─> ParallelFor(trials: trial_metrics)

    tune-confirm: ParallelFor(trials: train) ─> tune ─> ParallelFor(confirm_pool: train_confirmed) ─> step_cost ...

A trial is one training run (an optimizer variant and a seed, docs/artifacts.md);
the plan (components/plan/) expands a suite into the `trials` parameter. With
the tune-confirm protocol, `trials` is the learning-rate grid on one seed; a
tune step picks each optimizer's learning rate and a second ParallelFor over
`confirm_pool` trains the confirming trials (the rest skip at once,
components/tune/tune.py), which everything after it uses. The
same definition runs locally (`kfp.local`, `optbench run`) and compiles to the
IR YAML a Kubeflow cluster runs; `build_pipeline(configure)` lets the compiler
attach cluster settings (images, GPUs, resources) to each step without
touching the DAG (pipelines/cluster.py).
"""

from typing import Callable, List

from kfp import dsl

from optbench.components.evaluate.component import evaluate
from optbench.components.ingest.component import ingest
from optbench.components.init_model.component import init_model
from optbench.components.report.component import report
from optbench.components.train.component import step_cost, train, train_confirmed
from optbench.components.trial_metrics.component import trial_metrics
from optbench.components.tune.component import select_learning_rates

PIPELINE_NAME = "optbench-compare"
Configure = Callable[[dsl.PipelineTask, str], None]


def pipeline_for(arguments: dict, configure: Configure | None = None, parallelism: int = 0):
    """The pipeline that runs `arguments` (components/plan/arguments.py): its shape follows the protocol."""
    return build_pipeline(configure, parallelism, tune=bool(arguments["confirm_pool"]))


def build_pipeline(configure: Configure | None = None, parallelism: int = 0, tune: bool = False):
    """The pipeline function; `configure(task, step)` is called on every task it creates.

    `parallelism` caps how many trials train at once (0: no cap beyond the runner's own); `tune` builds the
    tune-confirm shape.
    """

    def step(task: dsl.PipelineTask, name: str, display: str) -> dsl.PipelineTask:
        task.set_display_name(display)
        if configure is not None:
            configure(task, name)
        return task

    @dsl.pipeline(name=PIPELINE_NAME, description="Which optimizer should I train this network with?")
    def compare_optimizers(
        trials: List[str],
        confirm_pool: List[str] = [],
        seeds: List[int] = [0],
        model_name: str = "cnn",
        model_config: str = "",
        data_source: str = "auto",
        dataset_name: str = "",
        epochs: int = 10,
        validation_fraction: float = 0.1,
        train_limit: int = 0,
        test_limit: int = 0,
        baseline_trial: str = "",
        thresholds_json: str = "{}",
        early_stopping_json: str = "{}",
        train_threads: int = 0,
        mixed_precision: bool = False,
        xla: bool = False,
        mlflow_uri: str = "",
        beam_args: List[str] = [],
        settings_json: str = "{}",
    ) -> dsl.Artifact:
        data = step(
            ingest(
                data_source=data_source,
                dataset_name=dataset_name,
                validation_fraction=validation_fraction,
                train_limit=train_limit,
                test_limit=test_limit,
                beam_args=beam_args,
            ),
            "ingest",
            "ingest (Beam)",
        )
        init = step(
            init_model(model_name=model_name, model_config=model_config, seeds=seeds), "init", "initial weights"
        )

        def train_each(items, tuned: dsl.PipelineTask | None = None) -> dsl.PipelineTask:
            settings = dict(
                dataset=data.output,
                initial=init.output,
                epochs=epochs,
                early_stopping_json=early_stopping_json,
                threads=train_threads,
                mixed_precision=mixed_precision,
                xla=xla,
            )
            with dsl.ParallelFor(items, parallelism=parallelism) as trial:
                if tuned is None:
                    return step(train(trial_json=trial, **settings), "train", "train (Keras)")
                task = train_confirmed(trial_json=trial, tuning=tuned.outputs["tuning"], **settings)
                return step(task, "train", "train (Keras), confirming")

        trained, tuning_json = train_each(trials), ""
        if tune:
            tuned = step(
                select_learning_rates(models=dsl.Collected(trained.outputs["model"])), "tune", "choose learning rates"
            )
            trials, tuning_json = confirm_pool, tuned.outputs["Output"]
            trained = train_each(trials, tuned)
        # One Collected per consumer: KFP 2.17 fails to compile a Collected object shared by two tasks.
        cost = step(
            step_cost(
                dataset=data.output,
                initial=init.output,
                models=dsl.Collected(trained.outputs["model"]),
                threads=train_threads,
                mixed_precision=mixed_precision,
                xla=xla,
            ),
            "step_cost",
            "step cost (Keras)",
        )
        evaluation = step(
            evaluate(
                dataset=data.output,
                models=dsl.Collected(trained.outputs["model"]),
                baseline_trial=baseline_trial,
                thresholds_json=thresholds_json,
                beam_args=beam_args,
            ),
            "evaluate",
            "evaluate (TFMA)",
        ).after(cost)  # the step cost is timed alone: nothing else runs then
        with dsl.ParallelFor(trials) as trial:
            step(trial_metrics(evaluation=evaluation.output, trial_json=trial), "metrics", "metrics (KFP UI)")
        published = step(
            report(
                dataset=data.output,
                models=dsl.Collected(trained.outputs["model"]),
                evaluation=evaluation.output,
                step_cost=cost.output,
                tuning_json=tuning_json,
                settings_json=settings_json,
                mlflow_uri=mlflow_uri,
            ),
            "report",
            "report",
        )
        return published.outputs["report_dir"]

    return compare_optimizers
