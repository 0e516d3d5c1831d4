"""`optbench estimate`: what a suite costs before it is submitted, from measured per-step figures.

Per trial: steps = epochs x ceil(training examples / batch size), and its
compute = steps x the per-step cost of its variant. The per-step costs are
either measured here, now (the step-cost step's own timer, on one batch of each variant's size), or read from a finished
run's step_cost.json, e.g. one from the cluster's GPU nodes (`--costs-from`).
On the cluster each training task is a pod: it adds a start-up (scheduling,
image, TensorFlow's import) and pods run `parallel` at once, longest first;
the wall time is that schedule's length and the GPU-hours its pods' time on
GPUs. Two layouts are priced: a pod per trial, and packed, each pod training
a pack of trials one after another on its GPU (the suite's `pack`, else as
many pods as run at once), which pays the start-up once per pack and keeps
a GPU busy that one small trial leaves mostly idle.
Validation passes and the input pipeline are not priced, as in the step
cost itself, so the figures are a lower bound on compute.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path

from optbench.components.question.suites import FULL_BATCH, packs, steps_per_epoch

POD_START_SECONDS = 60.0  # one trial's pod on a cluster: scheduling, a cached image, Python and TensorFlow start


@dataclass(frozen=True)
class Estimate:
    trials: list[dict]  # each trial with "steps", "step_seconds", "compute_seconds"
    device: str  # where the per-step figures were measured
    train_examples: int
    parallel: int
    gpus_per_trial: int
    pack: int  # trials per pod in the packed layout

    @property
    def steps(self) -> int:
        return sum(t["steps"] for t in self.trials)

    @property
    def compute_seconds(self) -> float:
        return sum(t["compute_seconds"] for t in self.trials)

    def pod_seconds(self, pack: int = 1) -> list[float]:
        """Each pod's seconds when every pod trains `pack` trials in turn (1: a pod per trial)."""
        return [sum(t["compute_seconds"] for t in p) + POD_START_SECONDS for p in packs(self.trials, pack)]

    def wall_seconds(self, pack: int = 1) -> float:
        """The longest-first schedule of the pods over `parallel` slots."""
        pods = self.pod_seconds(pack)
        slots = [0.0] * max(1, min(self.parallel, len(pods)))
        for seconds in sorted(pods, reverse=True):
            heapq.heappush(slots, heapq.heappop(slots) + seconds)
        return max(slots)

    def gpu_hours(self, pack: int = 1) -> float:
        return sum(self.pod_seconds(pack)) * self.gpus_per_trial / 3600


def train_examples(config) -> int:
    """How many examples a trial trains on: the source's training split after the validation split and limit."""
    from optbench.components.ingest.ingest import TRAIN_CODE, assign_train, training_count, validate_source

    resolved = validate_source(config.data_source, dataset=config.dataset or None)
    codes = assign_train(training_count(resolved), config.validation_fraction, config.train_limit or None)
    return int((codes == TRAIN_CODE).sum())


def measured_here(suite: dict, trials: list[dict], examples: int) -> tuple[dict[str, float], str]:
    """variant -> seconds per training step, timed on this machine now; and the device's description."""
    import keras
    import numpy as np

    from optbench.components.shared import models, optimizers
    from optbench.components.shared.devices import describe_device
    from optbench.components.shared.schema import IMAGE_SHAPE, NUM_CLASSES
    from optbench.components.step_cost.step_cost import measure

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # one traced step per variant is the point, not a waste
    rng = np.random.default_rng(0)
    steps = {}
    for trial in {t["variant"]: t for t in trials}.values():
        keras.utils.set_random_seed(0)
        model = models.build(suite["model"], suite.get("model_config", ""))
        model.compile(optimizers.build(trial["optimizer"], **trial["params"]), "sparse_categorical_crossentropy")
        size = examples if trial["batch_size"] == FULL_BATCH else trial["batch_size"]
        x = rng.integers(0, 256, (size, *IMAGE_SHAPE, 1), dtype=np.uint8)
        y = rng.integers(0, NUM_CLASSES, size)
        steps[trial["variant"]] = lambda model=model, x=x, y=y: model.train_on_batch(x, y)
    timed = measure(steps, rounds=5)
    device = describe_device()
    return {
        v: t["seconds_per_step"] for v, t in timed.items()
    }, f"{device['device_name'] or device['device']}, here, now"


def read_costs(path: str) -> tuple[dict[str, float], str]:
    """variant -> seconds per step from a run's step_cost.json (the file, or a folder holding one)."""
    from optbench.components.shared.files import read_json
    from optbench.components.shared.schema import STEP_COST_FILE

    found = Path(path)
    if found.is_dir():
        matches = sorted(found.rglob(STEP_COST_FILE))
        if len(matches) != 1:
            raise ValueError(
                f"{len(matches)} {STEP_COST_FILE} files under {path}: pass one finished run's folder or the file itself"
            )
        (found,) = matches
    try:
        record = read_json(found)
        costs = {v: float(c["seconds_per_step"]) for v, c in record["variants"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{found}: not a step-cost record ({e})") from None
    return costs, f"{record.get('device_name') or record.get('device', 'unknown device')}, from {found}"


def estimate(config, parallel: int, gpus_per_trial: int, costs_from: str | None = None) -> Estimate:
    """The suite `config` resolves to, priced; raises ValueError for a variant the costs do not cover."""
    from optbench.components.question import suites

    if parallel < 1 or gpus_per_trial < 0:
        raise ValueError("--parallel must be at least 1 and --gpus at least 0")
    suite = config.resolve()
    trials = suites.expand(suite)
    examples = train_examples(config)
    costs, device = read_costs(costs_from) if costs_from else measured_here(suite, trials, examples)
    missing = sorted({t["variant"] for t in trials} - set(costs))
    if missing:
        raise ValueError(f"the per-step costs ({device}) lack variant(s) {', '.join(missing)}")
    priced = []
    for t in trials:
        steps = suite["epochs"] * steps_per_epoch(t["batch_size"], examples)
        priced.append(
            {**t, "steps": steps, "step_seconds": costs[t["variant"]], "compute_seconds": steps * costs[t["variant"]]}
        )
    pack = suite["pack"] if suite["pack"] > 1 else -(-len(priced) // parallel)
    return Estimate(priced, device, examples, parallel, gpus_per_trial, pack)
