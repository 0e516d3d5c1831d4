"""The evaluate step as a KFP component: a thin wrapper around `run_evaluate`, beside it."""

from typing import List, Optional

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
    rounds: Optional[Input[Artifact]] = None,  # noqa: UP045 - KFP reads typing.Optional, not X | None
) -> List[str]:
    """TFMA: one analysis over every model (the added rounds' too) on the test split, against the baseline;
    returns the trials it evaluated (`{"trial": id}` each), what the KFP UI's metrics steps iterate over."""
    import json

    from optbench.components.evaluate.evaluate import run_evaluate
    from optbench.components.shared.artifacts import final_models, read_plan, round_models, saved_models_by_trial

    plan = read_plan(settings.path)
    chosen = final_models([m.path for m in models], [m.path for m in confirmed])
    chosen += round_models(rounds.path if rounds else None)
    models_by_trial = saved_models_by_trial(chosen)
    run_evaluate(  # the URIs for the Beam work: a distributed runner's workers reach them (gs:// on a cluster)
        models_by_trial,
        dataset.uri,
        evaluation.uri,
        baseline=plan["baseline_trial"] or None,
        thresholds=plan["thresholds"],
        beam_args=beam_args,
    )
    return [json.dumps({"trial": trial}) for trial in models_by_trial]
