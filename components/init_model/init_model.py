"""One set of initial weights per seed, saved once.

A fair comparison starts every optimizer from the very same weights. Building
the model in each training task with the same seed would usually give that,
but a file makes it a fact that tests (and users) can check byte for byte.
"""
from __future__ import annotations

import json
from pathlib import Path

from components.common.files import write_json_atomic
from components.common.schema import INITIAL_MODEL_FILE, INITIAL_WEIGHTS_FILE
from components.train import models


def seed_dir(initial_dir: str | Path, seed: int) -> Path:
    return Path(initial_dir) / f"seed-{seed}"


def run_init(model_name: str, seed: int, output_dir: str) -> dict:
    """Write `output_dir/seed-<seed>/` with the model's initial weights for that seed."""
    import keras

    keras.utils.set_random_seed(seed)
    model = models.build(model_name)
    out = seed_dir(output_dir, seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(out / INITIAL_WEIGHTS_FILE)
    info = {"model": model_name, "seed": seed, "parameters": int(model.count_params())}
    write_json_atomic(out / INITIAL_MODEL_FILE, info)
    return info


def load_initial(initial_dir: str, seed: int):
    """The model built and set to the saved initial weights of `seed`."""
    folder = seed_dir(initial_dir, seed)
    if not (folder / INITIAL_WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"no initial weights for seed {seed} in {initial_dir}")
    info = json.loads((folder / INITIAL_MODEL_FILE).read_text())
    model = models.build(info["model"])
    model.load_weights(folder / INITIAL_WEIGHTS_FILE)
    return model, info
