"""The tune step as a KFP component: a thin wrapper around components/tune/tune.py."""

from typing import List

from kfp.dsl import Artifact, Input, Model, Output

from optbench.components.image import component


@component
def select_learning_rates(models: Input[List[Model]], tuning: Output[Artifact]) -> str:
    """Pick each optimizer's learning rate on validation accuracy (tuning seed): the grid and the choice, as the
    artifact the confirming trials read and as JSON for the report."""
    from optbench.components.shared.artifacts import history_paths
    from optbench.components.shared.files import read_json
    from optbench.components.shared.tuning import write_tuning
    from optbench.components.tune.tune import tuning as choose

    return write_tuning(tuning.path, choose([read_json(p) for p in history_paths([m.path for m in models])]))
