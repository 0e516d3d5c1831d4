"""The notebook a user weighs optbench against, timed beside `optbench run` on the same work, and the difference split.

The notebook is what a person writes: load the arrays, then for each trial a
fresh seeded model, `compile`, `fit` with the validation split evaluated each
epoch, and `evaluate` on the test split; one process, TensorFlow's default
threads. It sees the examples the pipeline sees (ingest's own split of the
source), the same networks, optimizers, batch sizes and epochs. Both sides are
timed as a user meets them: `python -m optbench.bench.notebook` and the
`optbench run` command, each a fresh process, interpreter start included.

The pipeline's wall time is split with the timing lines every step prints
(the steps' timing lines): at each instant, the steps doing their own work
share it; when none is, a task starting (interpreter, imports) takes it; when
no task process is alive, it is kfp.local's own time between tasks (compiling,
scheduling, passing artifacts).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from optbench.components.shared.timing import MARKER, process_started
from optbench.layout import PIPELINE_LOG

STARTING, BETWEEN = "process starts and imports", "kfp.local between tasks"


def notebook(
    trials: list[dict],
    model_name: str,
    epochs: int,
    data_source: str,
    dataset: str | None,
    train_limit: int | None,
    test_limit: int | None,
    validation_fraction: float,
) -> dict:
    """Run the notebook's work in this process; seconds per phase (imports, load, train, test)."""
    started = time.time()
    import keras

    from optbench.components.ingest import idx, sources
    from optbench.components.ingest.ingest import TEST_CODE, TRAIN_CODE, VALIDATION_CODE, assign_test, assign_train
    from optbench.components.shared import models, optimizers

    imported = time.time()
    folder = sources.resolve(data_source, dataset=dataset).folder
    images, labels = idx.read_split(folder, "train")
    x_test, y_test = idx.read_split(folder, "test")
    kept = assign_test(len(y_test), test_limit) == TEST_CODE
    x_test, y_test = x_test[kept], y_test[kept]
    codes = assign_train(len(labels), validation_fraction, train_limit)
    x, y = images[codes == TRAIN_CODE][..., None], labels[codes == TRAIN_CODE]
    validation = (images[codes == VALIDATION_CODE][..., None], labels[codes == VALIDATION_CODE])
    loaded = time.time()
    train_seconds = test_seconds = 0.0
    accuracy = {}
    for trial in trials:
        t0 = time.time()
        keras.utils.set_random_seed(trial["seed"])
        model = models.build(model_name)
        model.compile(
            optimizer=optimizers.build(trial["optimizer"], **trial["params"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(x, y, batch_size=trial["batch_size"], epochs=epochs, validation_data=validation, verbose=0)
        t1 = time.time()
        accuracy[trial["trial"]] = float(model.evaluate(x_test[..., None], y_test, batch_size=1024, verbose=0)[1])
        train_seconds, test_seconds = train_seconds + t1 - t0, test_seconds + time.time() - t1
    return {
        "process_start": started - process_started(),
        "imports": imported - started,
        "load": loaded - imported,
        "train": train_seconds,
        "test": test_seconds,
        "test_accuracy": accuracy,
        "examples": {"train": int(len(y)), "validation": int(len(validation[1])), "test": int(len(y_test))},
    }


def time_notebook(config) -> dict:
    """The notebook as a user runs it: a fresh `python -m optbench.bench.notebook`; its wall time and phases."""
    from optbench.components.question import suites

    suite = config.resolve()
    job = {
        "trials": suites.expand(suite),
        "model_name": suite["model"],
        "epochs": suite["epochs"],
        "data_source": config.data_source,
        "dataset": config.dataset or None,
        "train_limit": config.train_limit or None,
        "test_limit": config.test_limit or None,
        "validation_fraction": config.validation_fraction,
    }
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "optbench.bench.notebook", json.dumps(job)], check=True, capture_output=True, text=True
    ).stdout
    wall = time.perf_counter() - started
    phases = json.loads(out.strip().splitlines()[-1])
    return {"wall_seconds": wall, **phases}


def time_pipeline(cli_args: list[str]) -> dict:
    """`optbench run CLI_ARGS` as a user runs it, in a fresh process; its wall time and its timeline split."""
    optbench = str(Path(sys.executable).with_name("optbench"))
    with tempfile.TemporaryDirectory() as out:
        started_at = time.time()
        started = time.perf_counter()
        subprocess.run([optbench, "run", *cli_args, "--output", out], check=True, capture_output=True)
        wall = time.perf_counter() - started
        (log,) = Path(out).glob(f"*/{PIPELINE_LOG}")
        markers = markers_of(log)
    return {
        "wall_seconds": wall,
        "tasks": len(markers),
        "split": split_timeline(markers, started_at, started_at + wall),
    }


def cli_args(config) -> list[str]:
    """The `optbench run` options that say what `config` says: one for each field that differs from its default."""
    args = []
    for f in fields(config):
        value, flag = getattr(config, f.name), f.metadata.get("flag")
        if flag is None or value == f.default:
            continue
        if isinstance(value, bool):
            args.append(flag)
        else:
            args += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return args


def compare_with_notebook(config, repetitions: int = 1) -> dict:
    """The run `config` describes, as `optbench run` and as the notebook, `repetitions` times each, alternating
    (notebook, pipeline, notebook, ...): the ratio of the minimums and of the medians, and the difference split
    for the pipeline run of median wall time against the notebook run of median wall time."""
    notebooks, pipelines = [], []
    for _ in range(repetitions):
        notebooks.append(time_notebook(config))
        pipelines.append(time_pipeline(cli_args(config)))
    notebook_side, pipeline_side = _median_run(notebooks), _median_run(pipelines)
    walls = {
        "notebook": [r["wall_seconds"] for r in notebooks],
        "pipeline": [r["wall_seconds"] for r in pipelines],
    }
    split = pipeline_side["split"]
    ours = {
        STARTING: split.get(STARTING, 0.0),
        "data (ingest; the notebook loads arrays)": split.get("ingest", 0.0),
        "training (with validation)": split.get("train", 0.0),
        "test evaluation (evaluate: TFMA)": split.get("evaluate", 0.0),
        "initial weights": split.get("init_model", 0.0),
        "step cost": split.get("step_cost", 0.0),
        "report and KFP UI metrics": split.get("report", 0.0) + split.get("trial_metrics", 0.0),
        BETWEEN: split.get(BETWEEN, 0.0),
    }
    theirs = {
        STARTING: notebook_side["process_start"] + notebook_side["imports"],
        "data (ingest; the notebook loads arrays)": notebook_side["load"],
        "training (with validation)": notebook_side["train"],
        "test evaluation (evaluate: TFMA)": notebook_side["test"],
    }
    return {
        "suite": config.resolve()["name"],
        "data_source": config.data_source,
        "repetitions": repetitions,
        "wall_seconds": walls,
        "notebook": notebook_side,
        "pipeline": pipeline_side,
        "ratio": statistics.median(walls["pipeline"]) / statistics.median(walls["notebook"]),
        "ratio_of_minimums": min(walls["pipeline"]) / min(walls["notebook"]),
        "breakdown": {
            part: {
                "pipeline": seconds,
                "notebook": theirs.get(part, 0.0),
                "difference": seconds - theirs.get(part, 0.0),
            }
            for part, seconds in ours.items()
        },
    }


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r["wall_seconds"])[(len(runs) - 1) // 2]


def markers_of(log: Path) -> list[dict]:
    """The timing lines every step prints, read back from a run's pipeline.log."""
    return [json.loads(line.split(MARKER, 1)[1]) for line in log.read_text().splitlines() if MARKER in line]


def split_timeline(markers: list[dict], start: float, end: float, resolution: float = 0.01) -> dict[str, float]:
    """Seconds of [start, end] per step's own work, per task start-up (STARTING) and with no task alive (BETWEEN).

    A task starts up from its process's start until its step began, plus the step's imports (counted as if they
    came first, as the steps' lazy imports mostly do). An instant where several steps work is shared among
    them; the parts add up to end - start.
    """
    totals: dict[str, float] = {}
    n = max(1, round((end - start) / resolution))
    for i in range(n):
        t = start + (i + 0.5) * resolution
        working = [m["step"] for m in markers if m["start"] + m["imports"] <= t < m["end"]]
        if working:
            for step in working:
                totals[step] = totals.get(step, 0.0) + resolution / len(working)
        else:
            alive = any(m["process"] <= t < m["start"] + m["imports"] for m in markers)
            key = STARTING if alive else BETWEEN
            totals[key] = totals.get(key, 0.0) + resolution
    return totals


if __name__ == "__main__":
    print(json.dumps(notebook(**json.loads(sys.argv[1]))))
