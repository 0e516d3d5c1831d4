"""The tune step as a KFP component: a thin wrapper around `run_tune`, beside it."""

from typing import List

from kfp.dsl import Artifact, Input, Model, Output

from optbench.components.image import component


@component
def tune(models: Input[List[Model]], settings: Input[Artifact], tuning: Output[Artifact]) -> List[str]:
    """Under tune-confirm, pick each optimizer's learning rate on validation accuracy (tuning seed), as the
    artifact the confirming trials read; returns the trials of the confirming round."""
    from optbench.components.shared.artifacts import history_paths, read_plan
    from optbench.components.shared.files import read_json
    from optbench.components.tune.tune import run_tune

    histories = [read_json(p) for p in history_paths([m.path for m in models])]
    return run_tune(histories, read_plan(settings.path), tuning.path)
