"""What one training step of each optimizer costs, measured so that it is a property of the optimizer.

A trial's wall time says which trials ran beside it: locally two trials share
the cores, and the one that overlaps the others most looks slowest. So this
step runs alone, after every trial has trained, and times one training step
of every variant on the same network (the first seed's initial weights), the
same batch of training examples and the same threads as the trials, in one
process, after warm-up. The variants take turns round by round, so a drift in
the machine's speed touches every one of them alike, and each variant's figure
is the median over rounds. The report's costs are a trial's steps times its
variant's per-step cost (docs/artifacts.md).

The figure covers the model and the optimizer, not the input pipeline (the
same for every optimizer), so it is the part of a step an optimizer changes.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from optbench.components.shared import optimizers
from optbench.components.shared.files import read_json, write_json_atomic
from optbench.components.shared.schema import HISTORY_FILE, STEP_COST_FILE
from optbench.components.shared.timing import timed

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # the first calls trace and build the optimizer's slots
ROUNDS = 11  # each round times every variant once, in turn (odd: the median is one of them)
MIN_ROUNDS = 5  # never fewer, whatever the budget
BLOCK_SECONDS = 0.05  # a timed block: enough steps that the timer's resolution does not matter
BUDGET_SECONDS = 60.0  # stop adding rounds past this (full-batch steps on a large split are slow)
MAX_BLOCK_STEPS = 50
METHOD = (
    "median over {rounds} interleaved rounds of one training step per optimizer, same network, batch and "
    "{threads} thread(s), in one process that ran alone after training; validation passes and input "
    "pipeline, the same for every optimizer, not counted"
)


def variants_of(model_dirs: list[str]) -> list[dict]:
    """One trial's settings per variant (the lowest seed), in the order first seen: what the timing needs."""
    chosen: dict[str, dict] = {}
    for history in (read_json(Path(d) / HISTORY_FILE) for d in model_dirs):
        known = chosen.get(history["variant"])
        if known is None or history["seed"] < known["seed"]:
            chosen[history["variant"]] = history
    return list(chosen.values())


def measure(
    steps: Mapping[str, Callable[[], object]], rounds: int = ROUNDS, budget_s: float = BUDGET_SECONDS
) -> dict[str, dict]:
    """Seconds per call of each `steps` function: warmed up, then timed in interleaved rounds.

    Returns {name: {"seconds_per_step", "q1", "q3", "rounds", "steps_per_block"}}: the median over rounds and
    the quartiles (the noise the report may compare against).
    """
    block: dict[str, int] = {}
    for name, step in steps.items():
        for _ in range(WARMUP_STEPS - 1):
            step()
        started = time.perf_counter()
        step()
        once = max(time.perf_counter() - started, 1e-6)
        block[name] = max(1, min(MAX_BLOCK_STEPS, round(BLOCK_SECONDS / once)))
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    started = time.perf_counter()
    for r in range(rounds):
        if r >= MIN_ROUNDS and time.perf_counter() - started > budget_s:
            break
        for name in names[r % len(names) :] + names[: r % len(names)]:  # a different one goes first each round
            t0 = time.perf_counter()
            for _ in range(block[name]):
                steps[name]()
            per_step[name].append((time.perf_counter() - t0) / block[name])
    out = {}
    for name, times in per_step.items():
        q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
        out[name] = {
            "seconds_per_step": median,
            "q1": q1,
            "q3": q3,
            "rounds": len(times),
            "steps_per_block": block[name],
        }
    return out


@timed("step_cost")
def run_step_cost(
    dataset_dir: str,
    initial_dir: str,
    model_dirs: list[str],
    output_dir: str,
    *,
    threads: int | None = None,
    mixed_precision: bool = False,
    xla: bool = False,
) -> dict:
    """Time every variant's training step, on the Keras backend the trials trained on, and write step_cost.json
    (docs/artifacts.md); return what it holds."""
    from optbench.components.shared.devices import configure_threads, describe_device

    variants = variants_of(model_dirs)
    backend = variants[0].get("backend", "tensorflow")
    configure_threads(threads, backend)
    import keras

    from optbench.components.shared.initial import load_initial
    from optbench.components.shared.records import read_split

    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    images, labels = read_split(dataset_dir, "train")
    seed = min(v["seed"] for v in variants)
    steps = {}
    for v in variants:
        keras.utils.set_random_seed(seed)
        model, _ = load_initial(initial_dir, seed)
        opt = optimizers.build(v["optimizer"], **(v.get("params") or {}))
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=xla)
        size = v["batch_size"] or len(labels)  # 0: full-batch gradient descent
        x, y = images[:size], labels[:size]  # the first batch of the split's order
        steps[v["variant"]] = lambda model=model, x=x, y=y: model.train_on_batch(x, y)
    timed = measure(steps)
    rounds = min(t["rounds"] for t in timed.values())
    result = {
        "method": METHOD.format(rounds=rounds, threads=threads or "all"),
        **describe_device(backend),
        "backend": backend,
        "threads": threads,
        "variants": {
            v["variant"]: {"batch_size": v["batch_size"], "optimizer": v["optimizer"], **timed[v["variant"]]}
            for v in variants
        },
    }
    for name, t in timed.items():
        log.info(
            "step cost[%s]  %.2f ms per step  (quartiles %.2f-%.2f)",
            name,
            *(1e3 * t[k] for k in ("seconds_per_step", "q1", "q3")),
        )
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(output_dir) / STEP_COST_FILE, result)
    return result
