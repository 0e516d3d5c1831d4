"""The evaluate step as a KFP component: a thin wrapper around components/evaluate/evaluate.py."""

from typing import List

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from optbench.components.image import component


@component
def evaluate(
    dataset: Input[Dataset],
    models: Input[List[Model]],
    baseline_trial: str,
    thresholds_json: str,
    beam_args: List[str],
    evaluation: Output[Artifact],
):
    """TFMA: one analysis over every model on the test split, against the baseline."""
    import json

    from optbench.components.evaluate.evaluate import evaluate as run_evaluate
    from optbench.components.shared.artifacts import saved_models_by_trial, trained

    run_evaluate(  # the URIs for the Beam work: a distributed runner's workers reach them (gs:// on a cluster)
        saved_models_by_trial(trained([m.path for m in models])),
        dataset.uri,
        evaluation.uri,
        baseline=baseline_trial or None,
        thresholds=json.loads(thresholds_json),
        beam_args=beam_args,
    )
