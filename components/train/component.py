"""The train step as KFP components: thin wrappers around `run_train`, beside them.

`train` trains one trial, or a pack of trials one after another (the first
round's tasks, as the plan step packed them), and each trial of a round of added seeds (whose
decide step sends one placeholder to skip when nothing is left to train).
`train_confirmed` is the confirming phase of the
tune-confirm protocol: the same step, told by the tune step's choice (an
artifact: kfp.local mixes up a task's output parameter with the loop's item
inside a ParallelFor) whether its trial is one to train or to skip.
"""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from optbench.components.image import component


@component
def train(
    dataset: Input[Dataset],
    initial: Input[Model],
    settings: Input[Artifact],
    trial_json: str,
    threads: int,
    mixed_precision: bool,
    xla: bool,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Keras: train one trial (optimizer variant x seed) from its seed's initial weights, or each trial of a pack
    in turn; skip the placeholder of a round of added seeds with nothing to train."""
    import json

    from optbench.components.shared.artifacts import persist_metadata, read_plan, write_skipped
    from optbench.components.train.train import run_train_task

    trial, plan = json.loads(trial_json), read_plan(settings.path)
    if trial.get("skip"):
        model.metadata.update(write_skipped(model.path, trial))
        persist_metadata(metrics)
        return
    run_train_task(dataset, initial, trial, model, metrics, plan, threads, mixed_precision, xla)


@component
def train_confirmed(
    dataset: Input[Dataset],
    initial: Input[Model],
    settings: Input[Artifact],
    tuning: Input[Artifact],
    trial_json: str,
    threads: int,
    mixed_precision: bool,
    xla: bool,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Keras: train one trial of the confirming round, or skip it when the tune step did not choose it (and every
    trial of a protocol with no confirming round)."""
    import json

    from optbench.components.shared.artifacts import persist_metadata, read_plan, write_skipped
    from optbench.components.shared.tuning import confirmed, read_tuning
    from optbench.components.train.train import run_train_task

    trial = json.loads(trial_json)
    if not confirmed(trial, read_tuning(tuning.path)):
        model.metadata.update(write_skipped(model.path, trial))
        persist_metadata(metrics)
        return
    run_train_task(dataset, initial, trial, model, metrics, read_plan(settings.path), threads, mixed_precision, xla)
