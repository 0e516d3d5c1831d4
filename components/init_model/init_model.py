"""The init_model step: build the model once per seed and save the weights every optimizer starts from."""

from __future__ import annotations

from optbench.components.shared import models
from optbench.components.shared.initial import save_initial


def run_init(model_name: str, seed: int, output_dir: str, model_config: str = "") -> dict:
    """Write `output_dir/seed-<seed>/` with the model's initial weights for that seed.

    `model_config` is the user's network as a Keras config (components/shared/models.py:custom); empty for
    the built-in `model_name`.
    """
    import keras

    keras.utils.set_random_seed(seed)
    return save_initial(models.build(model_name, model_config), model_name, seed, output_dir)
