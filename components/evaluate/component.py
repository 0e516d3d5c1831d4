"""The evaluate step as a KFP component: a thin wrapper around `run_evaluate`, beside it."""

from typing import List

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from optbench.components.image import component


@component
def evaluate(
    dataset: Input[Dataset],
    models: Input[List[Model]],
    confirmed: Input[List[Model]],
    settings: Input[Artifact],
    beam_args: List[str],
    evaluation: Output[Artifact],
):
    """TFMA: one analysis over every model on the test split, against the baseline."""
    from optbench.components.evaluate.evaluate import run_evaluate
    from optbench.components.shared.artifacts import final_models, read_plan, saved_models_by_trial

    plan = read_plan(settings.path)
    run_evaluate(  # the URIs for the Beam work: a distributed runner's workers reach them (gs:// on a cluster)
        saved_models_by_trial(final_models([m.path for m in models], [m.path for m in confirmed])),
        dataset.uri,
        evaluation.uri,
        baseline=plan["baseline_trial"] or None,
        thresholds=plan["thresholds"],
        beam_args=beam_args,
    )
