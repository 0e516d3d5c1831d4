"""The step-cost step as a KFP component: a thin wrapper around `run_step_cost`, beside it."""

from typing import List

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from optbench.components.image import component


@component
def step_cost(
    dataset: Input[Dataset],
    initial: Input[Model],
    models: Input[List[Model]],
    confirmed: Input[List[Model]],
    threads: int,
    mixed_precision: bool,
    xla: bool,
    cost: Output[Artifact],
):
    """Keras: time one training step of every optimizer variant, interleaved, alone: a cost no neighbour moves."""
    from optbench.components.shared.artifacts import final_models
    from optbench.components.step_cost.step_cost import run_step_cost

    result = run_step_cost(
        dataset.path,
        initial.path,
        final_models([m.path for m in models], [m.path for m in confirmed]),
        cost.path,
        threads=threads or None,
        mixed_precision=mixed_precision,
        xla=xla,
    )
    cost.metadata.update({name: v["seconds_per_step"] for name, v in result["variants"].items()})
