"""The plan step: the form's values, validated as the CLI validates them, expanded into the trials to train.

It writes plan.json, which every later step
reads for the settings the suite decides (the network, the seeds, the
epochs, the baseline ...), and returns the first round's trials, the list
the first ParallelFor iterates over: every trial, or under tune-confirm the
learning-rate grid on the first seed. Settings travel in the file, not as
output parameters, because kfp.local hands a task inside a ParallelFor the
loop's item in place of another task's output parameter.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from optbench.components.question import suites
from optbench.components.question.form import from_form
from optbench.components.shared import models
from optbench.components.shared.files import write_json_atomic
from optbench.components.shared.schema import PACK_KEY, PLAN_FILE
from optbench.components.shared.timing import timed

VERSIONED = ("kfp", "tensorflow", "keras", "tensorflow-model-analysis", "apache-beam")


def baseline_trial(suite: dict, trials: list[dict]) -> str:
    """The trial TFMA compares against: the baseline variant's, at the lowest seed ('' when none)."""
    matching = sorted((t["seed"], t["trial"]) for t in trials if t["variant"] == suite.get("baseline"))
    return matching[0][1] if matching else ""


def network(spec: str, model_config: str) -> tuple[str, str]:
    """(name, Keras config) of the network: a built-in by name, or the user's own as the config the CLI sent."""
    if not model_config:
        if not models.is_builtin(spec):
            raise ValueError(
                f"model {spec!r}: your own network reaches the pipeline as its Keras config; give model_config "
                "(`optbench run/submit --model` fill it in)"
            )
        return spec, ""
    try:
        return models.build("", model_config).name, model_config
    except Exception as e:  # noqa: BLE001 - whatever Keras raises, the config does not describe a network
        raise ValueError(f"model_config: not a Keras model config ({type(e).__name__}: {e})") from None


def pack_size(suite: dict, trials: int, slots: int) -> int:
    """How many trials each training task of the first round trains: the suite's `pack`, or when it leaves the
    choice to the runner (0), as many tasks as the runner trains at once (`slots`; 0: one task per trial)."""
    if suite["pack"]:
        return suite["pack"]
    return -(-trials // slots) if slots and trials else 1


def make_plan(form: dict[str, Any], *, run_id: str, runner: str, rounds: int = 0, slots: int = 0) -> dict:
    """The plan of a form's values; raises ValueError (SuiteError) with the CLI's message for a bad value.

    `rounds` is how many rounds of added seeds the pipeline holds: a form asking for more is refused here.
    `slots` is how many training tasks the runner runs at once, for a suite that leaves packing to it.
    """
    config, model_config = from_form(form)
    suite = config.resolve()
    round_seeds = suites.round_seeds(suite)
    if len(round_seeds) > rounds:
        raise ValueError(
            f"until_decided up to {suite['max_seeds']} seeds needs {len(round_seeds)} rounds after the run's "
            f"{len(suite['seeds'])} seeds; this pipeline holds {rounds}: compile it for this question "
            f"(`optbench compile --until-decided --max-seeds {suite['max_seeds']} --seeds {len(suite['seeds'])}`)"
        )
    model_name, model_config = network(suite["model"], model_config)
    trials = suites.expand(suite)
    tune = suite["protocol"] == suites.TUNE_CONFIRM
    first = suites.expand(suite, seeds=suite["seeds"][:1]) if tune else trials
    pack = pack_size(suite, len(first), slots)
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
        "margin": suite["margin"],
        "until_decided": suite["until_decided"],
        "max_seeds": suite["max_seeds"],
        "data_source": config.data_source,
        "dataset": config.dataset,
        "train_limit": config.train_limit,
        "test_limit": config.test_limit,
        "mixed_precision": config.mixed_precision,
        "xla": config.xla,
        "backend": suite["backend"],
        "pack": pack,
        "runner": runner,
        "versions": {p: version(p) for p in VERSIONED},
    }
    return {
        "suite": suite,
        "settings": settings,
        # tune-confirm: the grid on the first seed, then the pool the tune step picks the confirming trials from
        "trials": first,
        "packs": suites.packs(first, pack),  # what each training task of the first round trains
        "confirm_pool": trials if tune else [],
        "model_name": model_name,
        "model_config": model_config,
        "seeds": suite["seeds"],
        "round_seeds": round_seeds,  # the seeds rounds may add (until_decided): init_model writes theirs too
        "epochs": suite["epochs"],
        "early_stopping": suite["early_stopping"],
        "baseline_trial": baseline_trial(suite, trials),
        "thresholds": suite["thresholds"],
    }


@timed("plan")
def run_plan(
    form: dict[str, Any], output_dir: str, *, run_id: str, runner: str, rounds: int = 0, slots: int = 0
) -> list[str]:
    """The plan step: write plan.json into `output_dir`; return the first round's training tasks as JSON texts:
    a trial, or a pack of them (`{"pack": [trial, ...]}`)."""
    plan = make_plan(form, run_id=run_id, runner=runner, rounds=rounds, slots=slots)
    write_json_atomic(Path(output_dir) / PLAN_FILE, plan)
    return [json.dumps(p[0] if len(p) == 1 else {PACK_KEY: p}) for p in plan["packs"]]
