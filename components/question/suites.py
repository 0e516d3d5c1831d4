"""Suites: a comparison described in a YAML file, validated, then expanded into trials.

A suite says which model, which optimizers (with any hyperparameters), which
batch sizes, how many seeds, and optionally a learning-rate grid. Validation
runs before any work starts and every error lists what is valid. Expansion
turns it into trials (docs/artifacts.md), one training run each. The CLI
runs both before anything starts, for a local run and a compiled one alike.
"""

from __future__ import annotations

import copy
import inspect
import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from optbench.components.shared.models import MODELS, looks_like_model
from optbench.components.shared.optimizers import REGISTRY, get_spec, optimizer_class
from optbench.components.shared.schema import DEFAULT_THRESHOLDS
from optbench.components.shared.untrusted import UntrustedInput, plain_name, read_small_text

SUITES_PACKAGE = "optbench.components.question.suites_data"
DEFAULT_SUITE = "seed-004"
MAX_SEEDS = 50
MAX_EPOCHS = 1000
MAX_TRIALS = 200  # a suite past this stops with its count; its `max_trials` field raises the limit
TRIALS_CEILING = 100_000  # what `max_trials` may raise it to
FULL_BATCH = 0  # batch_size 0: every training example in one step
# Two optimizers within half a point of test accuracy of each other are, for most users, as good as each other.
DEFAULT_MARGIN = 0.005
MAX_MARGIN = 0.5
# Seeds until decided: up to this many seeds unless the suite says otherwise (a look after each, from the second).
DEFAULT_MAX_SEEDS = 5
# Keras 3's backends a trial may train on: TensorFlow (the default, fastest on a CPU) or JAX (where there is no
# TensorFlow, as on a GPU machine with JAX only). Evaluation and TFMA run on TensorFlow either way.
BACKENDS = ("tensorflow", "jax")
RUNNERS_CHOICE = 0  # pack 0: the runner decides how many trials a training task trains

_KEYS = {
    "name": "the suite's name: a plain name (letters, digits, . _ -)",
    "description": "one line on what it compares",
    "model": f"one of {', '.join(MODELS)}, or your own: module:function or a .keras file",
    "epochs": f"1-{MAX_EPOCHS}",
    "batch_size": "a positive integer or 'full'",
    "batch_sizes": "a list of batch sizes: a dimension of the comparison",
    "seeds": f"how many seeds (1-{MAX_SEEDS}) or a list of seeds",
    "optimizers": "a list of optimizer names or {name: ..., <hyperparameter>: value}",
    "lr_grid": "a list of learning rates to sweep for every optimizer",
    "baseline": "the variant the others are compared with",
    "thresholds": "{min_accuracy: 0-1, max_drop_vs_baseline: 0-1}: what blessing asks (defaults 0.2 and 0.1)",
    "protocol": "default (every trial on every seed) or tune-confirm (lr_grid on the first seed, then each "
    "optimizer's default and best learning rate on every seed)",
    "early_stopping": "opt-in median stopping rule: {grace_epochs: >= 1, min_trials: >= 1 (default 3)}",
    "margin": f"the practical margin in test accuracy, 0-{MAX_MARGIN:g}: a pair whose whole 95% interval lies within "
    f"plus or minus it is equivalent (default {DEFAULT_MARGIN:g}; 0 turns equivalence off)",
    "until_decided": "true: add seeds in rounds, one at a time, until a group-sequential test decides every "
    "optimizer against the leader (better, worse or equivalent) or max_seeds is reached",
    "max_seeds": f"with until_decided, the most seeds a variant trains (2-{MAX_SEEDS}, default {DEFAULT_MAX_SEEDS})",
    "backend": f"the Keras backend trials train on: {' or '.join(BACKENDS)} (default {BACKENDS[0]})",
    "pack": "trials each training task trains, in turn, in one process (on one device): 1 gives every trial its "
    "own task; 0 (default) lets the runner choose (`optbench run`: as many tasks as train at once; a cluster: 1)",
    "max_trials": f"the most trials it may expand to (default {MAX_TRIALS}, at most {TRIALS_CEILING:,})",
}
_THRESHOLDS = {"min_accuracy": (0.0, 1.0), "max_drop_vs_baseline": (0.0, 1.0)}
DEFAULT_PROTOCOL, TUNE_CONFIRM = "default", "tune-confirm"
PROTOCOLS = (DEFAULT_PROTOCOL, TUNE_CONFIRM)
MIN_TRIALS = 3  # early stopping compares with the median of at least this many other trials (Katib's default)
# Ranges for the hyperparameters we can judge; any other constructor argument is passed through.
_RANGES = {
    "learning_rate": (0.0, 1e4, False),
    "momentum": (0.0, 1.0, True),
    "rho": (0.0, 1.0, True),
    "beta_1": (0.0, 1.0, True),
    "beta_2": (0.0, 1.0, True),
    "epsilon": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, True),
    "initial_accumulator_value": (0.0, 1e6, True),
}


def steps_per_epoch(batch_size: int, examples: int) -> int:
    """Training steps in one epoch: the last batch may be short and is still a step; FULL_BATCH is one step."""
    return 1 if batch_size == FULL_BATCH else math.ceil(examples / batch_size)


class SuiteError(ValueError):
    """The suite is not valid; the message names the field and what is valid."""


def available() -> dict[str, Path]:
    """The suites shipped with optbench: name -> YAML file."""
    root = resources.files(SUITES_PACKAGE)
    return {
        Path(p.name).stem: Path(str(p))
        for p in sorted(root.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    }


def load(name_or_path: str) -> dict:
    """A shipped suite by name, or a YAML file by path; validated."""
    suites = available()
    if name_or_path in suites:
        path = suites[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise SuiteError(
                f"unknown suite {name_or_path!r}: not a file, and the shipped suites are {', '.join(suites)}"
            )
    try:
        text = read_small_text(path, "suite file")
    except (UntrustedInput, OSError) as e:
        raise SuiteError(str(e)) from None
    return load_text(text, source=str(path))


def load_text(text: str, source: str) -> dict:
    """A suite from its YAML text (a file's, or pasted into the pipeline's form); validated. `source` names it in
    errors and gives the suite its name when the YAML has none."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{source}: not valid YAML: {e}") from None
    return validate(raw, source=source)


def validate(raw: Any, source: str = "suite") -> dict:
    """Check every field and fill in defaults; returns the normalised suite."""
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite is a mapping of {', '.join(_KEYS)}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise SuiteError(
            f"{source}: unknown field(s) {', '.join(unknown)}; valid: "
            + "; ".join(f"{k} ({v})" for k, v in _KEYS.items())
        )
    suite = copy.deepcopy(raw)
    suite.setdefault("name", Path(source).stem)
    suite["name"] = _plain(source, "name", suite["name"])
    suite.setdefault("description", "")
    if not isinstance(suite["description"], str):
        raise SuiteError(f"{source}: description must be text, got {suite['description']!r}")
    suite.setdefault("model", "cnn")
    if not looks_like_model(suite["model"]):
        raise SuiteError(
            f"{source}: unknown model {suite['model']!r}; valid: {', '.join(MODELS)}, module:function or a .keras file"
        )
    suite["epochs"] = _int_in(source, "epochs", suite.get("epochs", 10), 1, MAX_EPOCHS)
    suite["batch_size"] = _batch(source, "batch_size", suite.get("batch_size", 64))
    if "batch_sizes" in suite:
        if not isinstance(suite["batch_sizes"], list) or not suite["batch_sizes"]:
            raise SuiteError(f"{source}: batch_sizes must be a non-empty list, e.g. [full, 1024, 64, 1]")
        suite["batch_sizes"] = [_batch(source, "batch_sizes", b) for b in suite["batch_sizes"]]
    suite["seeds"] = _seeds(source, suite.get("seeds", 1))
    suite["optimizers"] = _optimizers(source, suite.get("optimizers"))
    if "lr_grid" in suite:
        grid = suite["lr_grid"]
        if not isinstance(grid, list) or not grid:
            raise SuiteError(f"{source}: lr_grid must be a non-empty list of learning rates")
        suite["lr_grid"] = sorted({_number(source, "lr_grid", v, *_RANGES["learning_rate"]) for v in grid})
    suite["thresholds"] = _thresholds(source, suite.get("thresholds") or {})
    suite["early_stopping"] = _early_stopping(source, suite.get("early_stopping"), suite["epochs"])
    suite["protocol"] = suite.get("protocol", DEFAULT_PROTOCOL)
    if suite["protocol"] not in PROTOCOLS:
        raise SuiteError(f"{source}: protocol must be one of {', '.join(PROTOCOLS)}, got {suite['protocol']!r}")
    if suite["protocol"] == TUNE_CONFIRM and not suite.get("lr_grid"):
        raise SuiteError(f"{source}: protocol tune-confirm tunes over lr_grid: give one, e.g. [1e-4, 1e-3, 1e-2]")
    suite["margin"] = _number(source, "margin", suite.get("margin", DEFAULT_MARGIN), 0.0, MAX_MARGIN, True)
    _until_decided(source, suite)
    suite["backend"] = suite.get("backend", BACKENDS[0])
    if suite["backend"] not in BACKENDS:
        raise SuiteError(f"{source}: backend must be one of {', '.join(BACKENDS)}, got {suite['backend']!r}")
    suite["pack"] = _int_in(source, "pack", suite.get("pack", RUNNERS_CHOICE), 0, MAX_TRIALS)
    suite["max_trials"] = _int_in(source, "max_trials", suite.get("max_trials", MAX_TRIALS), 1, TRIALS_CEILING)
    _check_size(source, suite)
    variants = [t for t in expand(suite, seeds=[0])]
    # Default baseline: plain SGD at its default learning rate (the seeds compare against it), if compared.
    suite.setdefault(
        "baseline",
        next(
            (
                t["variant"]
                for t in variants
                if t["optimizer"] == "sgd"
                and not t["lr_sweep"]
                and t["params"] == {**get_spec("sgd").params, "learning_rate": get_spec("sgd").learning_rate}
            ),
            None,
        ),
    )
    if suite["baseline"] is not None and suite["baseline"] not in {t["variant"] for t in variants}:
        raise SuiteError(
            f"{source}: baseline {suite['baseline']!r} is not one of the suite's variants: "
            f"{', '.join(t['variant'] for t in variants)}"
        )
    return suite


def _plain(source: str, field: str, value: Any) -> str:
    try:
        return plain_name(value, f"{source}: {field}")
    except UntrustedInput as e:
        raise SuiteError(str(e)) from None


def _until_decided(source: str, suite: dict) -> None:
    """Check and fill in `until_decided` and `max_seeds`: seeds in rounds need a budget of at least the run's own
    seeds, and contenders known before the report (no learning-rate sweep to pick from, no early stopping)."""
    until = suite.setdefault("until_decided", False)
    if not isinstance(until, bool):
        raise SuiteError(f"{source}: until_decided must be true or false, got {until!r}")
    if not until:
        if suite.get("max_seeds") is not None:
            raise SuiteError(f"{source}: max_seeds is the budget of until_decided: set until_decided too")
        suite["max_seeds"] = None
        return
    seeds = len(suite["seeds"])
    budget = suite.get("max_seeds")
    suite["max_seeds"] = _int_in(source, "max_seeds", DEFAULT_MAX_SEEDS if budget is None else budget, 2, MAX_SEEDS)
    if suite["max_seeds"] <= seeds:
        raise SuiteError(
            f"{source}: max_seeds ({suite['max_seeds']}) must be above the run's {seeds} seeds: until_decided "
            "adds seeds"
        )
    if suite.get("lr_grid") and suite["protocol"] != TUNE_CONFIRM:
        raise SuiteError(
            f"{source}: until_decided tests the optimizers the run compares; with lr_grid use protocol "
            "tune-confirm, whose confirming round fixes them"
        )
    if suite["early_stopping"]:
        raise SuiteError(f"{source}: until_decided needs every trial scored; turn early_stopping off")


def round_seeds(suite: dict) -> list[int]:
    """The seeds that rounds may add, one a round, after the suite's own (none without until_decided)."""
    if not suite["until_decided"]:
        return []
    return [max(suite["seeds"]) + 1 + i for i in range(suite["max_seeds"] - len(suite["seeds"]))]


def packs(trials: list[dict], size: int) -> list[list[dict]]:
    """`trials` in packs of at most `size` (at least 1), as even as can be, each a run of the suite's order (a
    seed's trials together): what each training task trains."""
    count = -(-len(trials) // max(1, size))
    bounds = [i * len(trials) // count for i in range(count + 1)] if trials else [0]
    return [trials[a:b] for a, b in zip(bounds, bounds[1:])]


def for_seed(trial: dict, seed: int) -> dict:
    """`trial` (an expanded trial) on another seed: what a round trains."""
    return {**trial, "seed": seed, "trial": _trial_id(trial["variant"], seed)}


def _check_size(source: str, suite: dict) -> None:
    """Stop a suite that would expand past its max_trials, before expanding it: with the count and the way out."""
    grid = suite.get("lr_grid", [])
    rates = sum(1 + sum(lr != _default_lr(opt) for lr in grid) for opt in suite["optimizers"])
    batch_sizes = len(suite.get("batch_sizes") or [suite["batch_size"]])
    seeds = suite["max_seeds"] or len(suite["seeds"])  # until_decided may train up to max_seeds
    count = rates * batch_sizes * seeds
    if count > suite["max_trials"]:
        raise SuiteError(
            f"{source}: expands to {count:,} trials ({rates:,} optimizer settings x {batch_sizes:,} batch sizes "
            f"x {seeds:,} seeds), more than max_trials {suite['max_trials']:,}; if you mean it, "
            f"add `max_trials: {count}` to the suite (at most {TRIALS_CEILING:,})"
        )


def _default_lr(opt: dict) -> float:
    return opt["params"].get("learning_rate", get_spec(opt["name"]).learning_rate)


def _int_in(source: str, field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SuiteError(f"{source}: {field} must be an integer in {low}-{high}, got {value!r}")
    return value


def _number(source: str, field: str, value: Any, low: float, high: float, low_inclusive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (value == low and not low_inclusive):
        bound = "[" if low_inclusive else "("
        raise SuiteError(f"{source}: {field} must be a number in {bound}{low:g}, {high:g}], got {value!r}")
    return float(value)


def _batch(source: str, field: str, value: Any) -> int:
    if value == "full":
        return FULL_BATCH
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SuiteError(f"{source}: {field} must be a positive integer or 'full', got {value!r}")
    return value


def _seeds(source: str, value: Any) -> list[int]:
    if isinstance(value, list):
        if not value or len(set(value)) != len(value) or not all(isinstance(s, int) and s >= 0 for s in value):
            raise SuiteError(f"{source}: seeds must be a count or a list of distinct non-negative integers")
        return value
    return list(range(_int_in(source, "seeds", value, 1, MAX_SEEDS)))


def _optimizers(source: str, value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise SuiteError(f"{source}: optimizers must be a non-empty list; valid names: {', '.join(REGISTRY)}")
    # a value that is neither a name nor a mapping becomes {}, which has no 'name'
    entries: list[dict] = [{"name": e} if isinstance(e, str) else dict(e) if isinstance(e, dict) else {} for e in value]
    if any("name" not in e for e in entries):
        raise SuiteError(f"{source}: each optimizer is a name or a mapping with 'name'; got {value!r}")
    unknown = [e["name"] for e in entries if e["name"] not in REGISTRY]
    if unknown:
        raise SuiteError(
            f"{source}: unknown optimizer(s) {', '.join(map(repr, unknown))}; valid: {', '.join(REGISTRY)}"
        )
    out: list[dict] = []
    for entry in entries:
        name = entry.pop("name")
        label = _plain(source, f"{name}'s label", entry.pop("label", name))
        params = {k: _param(source, name, k, v) for k, v in entry.items()}
        out.append({"name": name, "label": label, "params": params})
    labels = [o["label"] for o in out]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise SuiteError(f"{source}: optimizer(s) listed twice: {', '.join(repeated)} (give one a 'label')")
    return out


def optimizer_params(name: str) -> list[str]:
    """The hyperparameters the Keras class of `name` takes."""
    cls = optimizer_class(name)
    return [p for p in inspect.signature(cls).parameters if p not in ("name", "kwargs")]


def _param(source: str, optimizer: str, key: str, value: Any) -> Any:
    valid = optimizer_params(optimizer)
    if key not in valid:
        raise SuiteError(f"{source}: {optimizer} has no hyperparameter {key!r}; valid: {', '.join(valid)}")
    if key in _RANGES:
        return _number(source, f"{optimizer}.{key}", value, *_RANGES[key])
    return value


def _thresholds(source: str, value: Any) -> dict:
    if not isinstance(value, dict) or set(value) - set(_THRESHOLDS):
        raise SuiteError(f"{source}: thresholds takes {', '.join(_THRESHOLDS)}; got {value!r}")
    return DEFAULT_THRESHOLDS | {
        k: _number(source, f"thresholds.{k}", v, lo, hi, True) for k, v in value.items() for lo, hi in [_THRESHOLDS[k]]
    }


def _early_stopping(source: str, value: Any, epochs: int) -> dict | None:
    """None (off) or {grace_epochs, min_trials}: Katib's median stopping rule, checked after every epoch past
    the grace period."""
    if value is None:
        return None
    if not isinstance(value, dict) or "grace_epochs" not in value or set(value) - {"grace_epochs", "min_trials"}:
        raise SuiteError(f"{source}: early_stopping takes grace_epochs (required) and min_trials; got {value!r}")
    if epochs < 2:
        raise SuiteError(f"{source}: early_stopping needs at least 2 epochs, the suite has {epochs}")
    return {
        "grace_epochs": _int_in(source, "early_stopping.grace_epochs", value["grace_epochs"], 1, epochs - 1),
        "min_trials": _int_in(source, "early_stopping.min_trials", value.get("min_trials", MIN_TRIALS), 1, 10_000),
    }


def _trial_id(variant: str, seed: int) -> str:
    return f"{variant.replace(' ', '').replace('=', '')}.s{seed}"


def expand(suite: dict, seeds: list[int] | None = None) -> list[dict]:
    """The suite's trials: optimizer x batch size x learning rate (default, then the grid) x seed."""
    trials = []
    batch_sizes = suite.get("batch_sizes") or [suite["batch_size"]]
    for seed in seeds if seeds is not None else suite["seeds"]:
        for opt in suite["optimizers"]:
            default_lr = _default_lr(opt)
            rates = [(default_lr, False)] + [(lr, True) for lr in suite.get("lr_grid", []) if lr != default_lr]
            for batch_size in batch_sizes:
                for lr, sweep in rates:
                    variant = opt["label"]
                    if suite.get("batch_sizes"):
                        variant += f" bs={'full' if batch_size == FULL_BATCH else batch_size}"
                    if sweep:
                        variant += f" lr={lr:g}"
                    params = {**get_spec(opt["name"]).params, **opt["params"], "learning_rate": lr}
                    trials.append(
                        {
                            "trial": _trial_id(variant, seed),
                            "variant": variant,
                            "optimizer": opt["name"],
                            "params": params,
                            "seed": seed,
                            "batch_size": batch_size,
                            "learning_rate": lr,
                            "lr_sweep": sweep,
                        }
                    )
    return trials


def with_overrides(
    suite: dict,
    *,
    optimizers: list[str] | None = None,
    model: str | None = None,
    epochs: int | None = None,
    batch_size: int | str | None = None,
    seeds: int | None = None,
    first_seed: int = 0,
    lr_grid: list[float] | None = None,
    baseline: str | None = None,
    early_stopping: int | None = None,
    protocol: str | None = None,
    margin: float | None = None,
    until_decided: bool = False,
    max_seeds: int | None = None,
    backend: str | None = None,
    pack: int | None = None,
) -> dict:
    """The suite with the CLI's options applied on top, validated again (`early_stopping`: the grace epochs)."""
    raw = {k: v for k, v in suite.items()}
    as_written = lambda b: "full" if b == FULL_BATCH else b  # noqa: E731 - back to the YAML's spelling
    raw["batch_size"] = as_written(suite["batch_size"])
    if "batch_sizes" in suite:
        raw["batch_sizes"] = [as_written(b) for b in suite["batch_sizes"]]
    raw["optimizers"] = (
        [{"name": o["name"], "label": o["label"], **o["params"]} for o in suite["optimizers"]]
        if optimizers is None
        else optimizers
    )
    for key, value in (("model", model), ("epochs", epochs), ("batch_size", batch_size), ("lr_grid", lr_grid)):
        if value is not None:
            raw[key] = value
    if batch_size is not None:
        raw.pop("batch_sizes", None)
    count = _int_in(suite["name"], "seeds", seeds, 1, MAX_SEEDS) if seeds is not None else len(suite["seeds"])
    raw["seeds"] = [first_seed + i for i in range(count)] if (seeds is not None or first_seed) else suite["seeds"]
    if early_stopping is not None:
        raw["early_stopping"] = {"grace_epochs": early_stopping}
    if protocol is not None:
        raw["protocol"] = protocol
    if margin is not None:
        raw["margin"] = margin
    if until_decided:
        raw["until_decided"] = True
    if max_seeds is not None:
        raw["max_seeds"] = max_seeds
    elif not raw.get("until_decided"):
        raw.pop("max_seeds", None)  # validate() filled in None
    for key, value in (("backend", backend), ("pack", pack)):
        if value is not None:
            raw[key] = value
    raw.pop("baseline", None)
    if baseline is not None:
        raw["baseline"] = baseline
        return validate(raw, source=suite["name"])
    overridden = validate(raw, source=suite["name"])
    if suite.get("baseline") in {t["variant"] for t in expand(overridden, seeds=[0])}:
        overridden["baseline"] = suite["baseline"]  # still compared: keep the suite's choice
    return overridden
