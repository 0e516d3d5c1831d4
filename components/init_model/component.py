"""The init_model step as a KFP component: a thin wrapper around components/init_model/init_model.py."""

from typing import List

from kfp.dsl import Model, Output

from optbench.components.image import component


@component
def init_model(model_name: str, model_config: str, seeds: List[int], initial: Output[Model]):
    """Build the model once per seed and save the initial weights every optimizer starts from."""
    from optbench.components.init_model.init_model import run_init

    infos = [run_init(model_name, int(seed), initial.path, model_config) for seed in seeds]
    initial.metadata.update({"model": model_name, "parameters": infos[0]["parameters"], "seeds": len(infos)})
