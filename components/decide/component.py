"""The decide step as KFP components: thin wrappers around `run_decide`, beside it.

`decide` makes the first look, on the run's own models; `decide_next` each
later one, on the previous look's folder and the round that look asked for.
Both return the next round's trials (one that skips at once when nothing is
left to train: a ParallelFor needs an item).
"""

from typing import List

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from optbench.components.image import component


@component
def decide(
    dataset: Input[Dataset],
    models: Input[List[Model]],
    confirmed: Input[List[Model]],
    settings: Input[Artifact],
    rounds: Output[Artifact],
) -> List[str]:
    """Sequential test, first look: lead, decide what the run's seeds decide, and name the first added round."""
    from optbench.components.decide.decide import run_decide
    from optbench.components.shared.artifacts import final_models, read_plan

    chosen = final_models([m.path for m in models], [m.path for m in confirmed])
    return run_decide(dataset.path, chosen, None, read_plan(settings.path), rounds.path)


@component
def decide_next(
    dataset: Input[Dataset],
    earlier: Input[Artifact],
    latest: Input[List[Model]],
    settings: Input[Artifact],
    rounds: Output[Artifact],
) -> List[str]:
    """Sequential test, a later look: add the round just trained, decide, and name the next round."""
    from optbench.components.decide.decide import run_decide
    from optbench.components.shared.artifacts import read_plan, trained

    added = trained([m.path for m in latest])
    return run_decide(dataset.path, added, earlier.path, read_plan(settings.path), rounds.path)
