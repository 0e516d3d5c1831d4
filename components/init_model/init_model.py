"""The init_model step: build the model once per seed and save the weights every optimizer starts from."""

from __future__ import annotations

import json
import random
from typing import Any

from optbench.components.shared import models
from optbench.components.shared.initial import save_initial
from optbench.components.shared.timing import timed


def pin_seeds(config: Any, rng: random.Random) -> Any:
    """`config` (a Keras model config) with every unseeded initializer or layer given a seed drawn from `rng`.

    Keras draws an unseeded initializer's seed from the process-wide `random` module when the layer is
    made, so any other thread that draws from it in between (a client's retry jitter, a runner's pool)
    changes the weights. Seeds written into the architecture make the weights a function of `seed` alone,
    and architecture.json records them.
    """
    if isinstance(config, dict):
        pinned = {k: pin_seeds(v, rng) for k, v in config.items()}
        if "seed" in pinned and pinned["seed"] is None:
            pinned["seed"] = rng.randrange(1, 2**31)
        return pinned
    if isinstance(config, list):
        return [pin_seeds(v, rng) for v in config]
    return config


@timed("init_model")
def run_init_model(model_name: str, seed: int, output_dir: str, model_config: str = "") -> dict:
    """Write `output_dir/seed-<seed>/` with the model's initial weights for that seed.

    `model_config` is the user's network as a Keras config (`models.custom`); empty for
    the built-in `model_name`.
    """
    import keras

    keras.utils.set_random_seed(seed)
    architecture = pin_seeds(json.loads(models.build(model_name, model_config).to_json()), random.Random(seed))
    model = keras.models.model_from_json(json.dumps(architecture))
    return save_initial(model, model_name, seed, output_dir)
