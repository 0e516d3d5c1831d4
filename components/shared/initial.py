"""The initial weights every optimizer of a seed starts from: one file per seed, written once.

A fair comparison starts every optimizer from the very same weights. Building
the model in each training task with the same seed would usually give that,
but a file makes it a fact that tests (and users) can check byte for byte.

    initial/seed-<seed>/model.weights.h5   the weights
    initial/seed-<seed>/architecture.json  the Keras config the training task rebuilds the network from
    initial/seed-<seed>/model.json         {"model": ..., "seed": ..., "parameters": ...}
"""

from __future__ import annotations

from pathlib import Path

from optbench.components.shared.files import read_json, write_json_atomic, write_text_atomic
from optbench.components.shared.schema import INITIAL_ARCHITECTURE_FILE, INITIAL_MODEL_FILE, INITIAL_WEIGHTS_FILE


def seed_dir(initial_dir: str | Path, seed: int) -> Path:
    return Path(initial_dir) / f"seed-{seed}"


def save_initial(model, model_name: str, seed: int, initial_dir: str | Path) -> dict:
    """Write `model`'s weights as the initial weights of `seed`; returns what model.json records."""
    out = seed_dir(initial_dir, seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(out / INITIAL_WEIGHTS_FILE)
    write_text_atomic(out / INITIAL_ARCHITECTURE_FILE, model.to_json())
    info = {"model": model_name, "seed": seed, "parameters": int(model.count_params())}
    write_json_atomic(out / INITIAL_MODEL_FILE, info)
    return info


def load_initial(initial_dir: str | Path, seed: int):
    """(the model built and set to the saved initial weights of `seed`, its model.json)."""
    folder = seed_dir(initial_dir, seed)
    if not (folder / INITIAL_WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"no initial weights for seed {seed} in {initial_dir}")
    import keras

    info = read_json(folder / INITIAL_MODEL_FILE)
    model = keras.models.model_from_json((folder / INITIAL_ARCHITECTURE_FILE).read_text())
    model.load_weights(folder / INITIAL_WEIGHTS_FILE)
    return model, info
