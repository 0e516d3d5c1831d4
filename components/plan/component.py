"""The plan step as a KFP component: a thin wrapper around `run_plan`, beside it.

Its inputs are the pipeline's form (a test holds the
two to the same names and types) plus what the runner knows: the run's id,
the runner's name, how many rounds of seeds the pipeline was built with and
how many training tasks it runs at once (what a suite that leaves packing to
the runner is packed for).
"""

from typing import List

from kfp.dsl import Artifact, Output

from optbench.components.image import component


@component
def plan(
    suite: str,
    suite_yaml: str,
    optimizers: str,
    model: str,
    model_config: str,
    epochs: int,
    batch_size: str,
    seeds: int,
    seed: int,
    lr_grid: str,
    baseline: str,
    protocol: str,
    early_stopping: int,
    margin: str,
    until_decided: bool,
    max_seeds: int,
    train_limit: int,
    test_limit: int,
    validation_fraction: float,
    data_source: str,
    dataset: str,
    mixed_precision: bool,
    backend: str,
    pack: int,
    xla: bool,
    mlflow_uri: str,
    history_root: str,
    run_id: str,
    runner: str,
    rounds: int,
    slots: int,
    settings: Output[Artifact],
) -> List[str]:
    """Validate the form as the CLI does (a bad value fails here, before any work) and expand the suite: the
    settings every later step reads, and the first training round's tasks: a trial or a pack of trials each."""
    form = dict(locals())
    for own in ("run_id", "runner", "rounds", "slots", "settings"):
        form.pop(own)

    from optbench.components.plan.plan import run_plan

    return run_plan(form, settings.path, run_id=run_id, runner=runner, rounds=rounds, slots=slots)
