"""Find things inside the artifact folders of a run (see docs/artifacts.md)."""

from __future__ import annotations

import json
from pathlib import Path

from optbench.components.shared.files import read_json
from optbench.components.shared.schema import (
    EVAL_SUMMARY_FILE,
    HISTORY_FILE,
    PLAN_FILE,
    ROUND_MODELS_DIR,
    SAVED_MODEL_DIR,
    SEQUENTIAL_JSON,
    STATS_FILE,
    split_pattern,
)


def split_files(dataset_dir: str, split: str) -> list[str]:
    """The sorted TFRecord shards of one split, on local disk or gs:// (TensorFlow's file systems)."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(split_pattern(dataset_dir, split)))
    if not files:
        raise FileNotFoundError(
            f"no TFRecords for split {split!r}: nothing matches {split_pattern(dataset_dir, split)}"
        )
    return files


SKIPPED = "skipped"  # a confirming trial the tune step did not choose: a history, no model


def write_skipped(model_dir: str, trial: dict) -> dict:
    """The history of a trial that was skipped, not trained; returns it."""
    from optbench.components.shared.files import write_json_atomic

    history = {k: trial[k] for k in ("trial", "variant", "optimizer", "seed")} | {"status": SKIPPED}
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(model_dir) / HISTORY_FILE, history)
    return history


def trial_dirs(model_dirs: list[str]) -> list[str]:
    """Each trial's folder: a training task's output is one trial's, or holds a folder per trial of its pack."""
    out = []
    for d in model_dirs:
        if (Path(d) / HISTORY_FILE).exists():
            out.append(d)
        else:
            out += sorted(str(p.parent) for p in Path(d).glob(f"*/{HISTORY_FILE}"))
    return out


def trained(model_dirs: list[str]) -> list[str]:
    """The folders of the trials that trained: the steps after training never see a skipped one."""
    return [d for d in trial_dirs(model_dirs) if read_json(Path(d) / HISTORY_FILE).get("status") != SKIPPED]


def final_models(first: list[str], confirming: list[str]) -> list[str]:
    """The models the comparison is made of: the confirming round's when it trained any (tune-confirm), else the
    first round's (the default protocol, whose confirming round skips every trial)."""
    return trained(confirming) or trained(first)


def round_models(rounds_dir: str | None) -> list[str]:
    """The model folders of the trials that added rounds trained: the last look's copies (none without the
    sequential test, or when no round trained)."""
    folder = Path(rounds_dir or "") / ROUND_MODELS_DIR
    return sorted(str(d) for d in folder.iterdir()) if rounds_dir and folder.is_dir() else []


def read_sequential(rounds_dir: str | None) -> dict | None:
    """The sequential test's record after its last look, or None without one (no rounds in the pipeline, or a
    form that did not ask for the test)."""
    path = Path(rounds_dir or "") / SEQUENTIAL_JSON
    return read_json(path) if rounds_dir and path.exists() else None


def read_plan(plan_dir: str) -> dict:
    """The plan step's plan.json: the validated suite, its settings and trials."""
    return read_json(Path(plan_dir) / PLAN_FILE)


def saved_models_by_trial(model_dirs: list[str]) -> dict[str, str]:
    """trial id -> SavedModel path, for the models of one comparison."""
    return {read_json(Path(d) / HISTORY_FILE)["trial"]: str(Path(d) / SAVED_MODEL_DIR) for d in model_dirs}


def history_paths(model_dirs: list[str]) -> list[str]:
    return [str(Path(d) / HISTORY_FILE) for d in trial_dirs(model_dirs)]


def summary_path(evaluation_dir: str) -> str:
    return str(Path(evaluation_dir) / EVAL_SUMMARY_FILE)


def stats_path(dataset_dir: str) -> str:
    return str(Path(dataset_dir) / STATS_FILE)


def persist_metadata(artifact) -> None:
    """Write a metadata-only artifact (KFP Metrics, ClassificationMetrics) to its path as JSON.

    kfp.local's cache treats an output whose file is missing as a miss, so a
    task with a metrics output would never be resumed from the cache.
    """
    Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
    Path(artifact.path).write_text(json.dumps(artifact.metadata, sort_keys=True))
