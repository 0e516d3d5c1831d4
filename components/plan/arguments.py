"""The pipeline's arguments for a comparison: the same for a local run and a compiled cluster pipeline.

The suite's trials become the `trials` list the ParallelFor iterates over;
the settings the report prints travel as `settings_json`.
"""

from __future__ import annotations

import json
from importlib.metadata import version

from optbench.components.plan import suites
from optbench.components.plan.options import RunConfig
from optbench.components.shared import models

VERSIONED = ("kfp", "tensorflow", "keras", "tensorflow-model-analysis", "apache-beam")


def baseline_trial(suite: dict, trials: list[dict]) -> str:
    """The trial TFMA compares against: the baseline variant's, at the lowest seed ('' when none)."""
    matching = sorted((t["seed"], t["trial"]) for t in trials if t["variant"] == suite.get("baseline"))
    return matching[0][1] if matching else ""


def pipeline_arguments(
    config: RunConfig, suite: dict, *, run_id: str, runner: str, train_threads: int, beam_args: list[str]
) -> dict:
    """The pipeline's parameters for `config` and its resolved, validated `suite` (RunConfig.resolve).

    The user's own model travels as its Keras config (`model_config`), loaded and checked here.
    """
    trials = suites.expand(suite)
    model_name, model_config = (
        (suite["model"], "") if models.is_builtin(suite["model"]) else models.custom(suite["model"])
    )
    settings = {
        "run_id": run_id,
        "suite": suite["name"],
        "description": suite["description"],
        "model_name": model_name,
        "model": suite["model"],
        "epochs": suite["epochs"],
        "batch_size": suite.get("batch_sizes") or suite["batch_size"],
        "seeds": suite["seeds"],
        "optimizers": [o["label"] for o in suite["optimizers"]],
        "lr_grid": suite.get("lr_grid"),
        "baseline": suite.get("baseline"),
        "thresholds": suite["thresholds"],
        "early_stopping": suite["early_stopping"],
        "protocol": suite["protocol"],
        "data_source": config.data_source,
        "dataset": config.dataset,
        "train_limit": config.train_limit,
        "test_limit": config.test_limit,
        "mixed_precision": config.mixed_precision,
        "xla": config.xla,
        "runner": runner,
        "versions": {p: version(p) for p in VERSIONED},
    }
    tune = suite["protocol"] == suites.TUNE_CONFIRM
    return {
        # tune-confirm: the grid on the first seed, and the pool the tune step picks the confirming trials from
        "trials": [json.dumps(t) for t in (suites.expand(suite, seeds=suite["seeds"][:1]) if tune else trials)],
        "confirm_pool": [json.dumps(t) for t in trials] if tune else [],
        "seeds": suite["seeds"],
        "model_name": model_name,
        "model_config": model_config,
        "data_source": config.data_source,
        "dataset_name": config.dataset,
        "epochs": suite["epochs"],
        "validation_fraction": config.validation_fraction,
        "train_limit": config.train_limit,
        "test_limit": config.test_limit,
        "baseline_trial": baseline_trial(suite, trials),
        "thresholds_json": json.dumps(suite["thresholds"]),
        "early_stopping_json": json.dumps(suite["early_stopping"] or {}),
        "train_threads": train_threads,
        "mixed_precision": config.mixed_precision,
        "xla": config.xla,
        "mlflow_uri": config.mlflow_uri,
        "beam_args": list(beam_args),
        "settings_json": json.dumps(settings),
    }
