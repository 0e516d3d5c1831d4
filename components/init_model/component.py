"""The init_model step as a KFP component: a thin wrapper around `run_init_model`, beside it."""

from kfp.dsl import Artifact, Input, Model, Output

from optbench.components.image import component


@component
def init_model(settings: Input[Artifact], initial: Output[Model]):
    """Build the plan's network once per seed (rounds' seeds too) and save the initial weights every optimizer
    starts from."""
    from optbench.components.init_model.init_model import run_init_model
    from optbench.components.shared.artifacts import read_plan

    plan = read_plan(settings.path)
    seeds = plan["seeds"] + plan["round_seeds"]
    infos = [run_init_model(plan["model_name"], int(seed), initial.path, plan["model_config"]) for seed in seeds]
    initial.metadata.update({"model": plan["model_name"], "parameters": infos[0]["parameters"], "seeds": len(infos)})
