"""Find things inside the artifact folders of a run (see docs/artifacts.md)."""
from __future__ import annotations

import json
from pathlib import Path

from components.common.schema import EVAL_SUMMARY_FILE, HISTORY_FILE, SAVED_MODEL_DIR, STATS_FILE


def optimizer_of(model_dir: str) -> str:
    """The optimizer a trained model folder belongs to, from its history.json."""
    return json.loads((Path(model_dir) / HISTORY_FILE).read_text())["optimizer"]


def saved_models_by_optimizer(model_dirs: list[str]) -> dict[str, str]:
    """optimizer -> SavedModel path, for the models of one comparison."""
    return {optimizer_of(d): str(Path(d) / SAVED_MODEL_DIR) for d in model_dirs}


def history_paths(model_dirs: list[str]) -> list[str]:
    return [str(Path(d) / HISTORY_FILE) for d in model_dirs]


def summary_path(evaluation_dir: str) -> str:
    return str(Path(evaluation_dir) / EVAL_SUMMARY_FILE)


def stats_path(dataset_dir: str) -> str:
    return str(Path(dataset_dir) / STATS_FILE)
