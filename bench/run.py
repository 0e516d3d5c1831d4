"""`make bench`: measure every stage against its baseline, write bench/results/<date>-<host>.json, print a table.

Every figure is a ratio of two timings taken in the same run, so it holds on
a noisy machine. Small data by default (`--size small`: the sample, or 8,000
examples of the source for the stage benchmarks); `--size full` uses every
example of the source, by default the genuine full-size Fashion-MNIST of
Debian's dataset-fashion-mnist package (the one full-size dataset available
offline). The notebook stage compares the default run (`optbench run`, the
seed-004 suite, 10 epochs) on that data with the notebook a user would write.
`--size smoke` runs every stage on a few hundred examples for one epoch: its
figures mean nothing, but `make test` runs it so that no stage breaks unseen."""

from __future__ import annotations

import json
import platform
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Size:
    """How much work each stage does. The notebook stage runs the default suite; the orchestration and fan-out
    runs run it for `pipeline_epochs`."""

    train_limit: int | None  # examples of the source's training split the stages use (None: all)
    notebook: dict  # RunConfig fields of the notebook stage's run, beside the data source
    notebook_repetitions: int  # runs of each side of the notebook stage, alternating
    pipeline_epochs: int
    rounds: int  # alternating epochs of the training stage, each side


SIZES = {
    # every stage on a few hundred examples, one epoch, two optimizers: `make test` runs it, to keep the bench working
    "smoke": Size(400, {"optimizers": ["adam", "sgd"], "epochs": 1, "train_limit": 400, "test_limit": 200}, 1, 1, 2),
    "small": Size(8000, {}, 3, 2, 8),  # the default: the sample, or 8,000 examples of the source
    "full": Size(None, {}, 2, 2, 8),  # every example of the source; the notebook stage's run is the default run
}


def _dataset(source: str, train_limit: int | None, work: Path) -> str:
    from optbench.components.ingest.ingest import run_ingest

    out = work / "dataset"
    run_ingest(source, str(out), train_limit=train_limit)
    return str(out)


@click.command()
@click.option("--size", type=click.Choice(list(SIZES)), default="small", show_default=True)
@click.option("--data-source", default="auto", show_default=True)
@click.option("--output", type=click.Path(file_okay=False), default=str(RESULTS), show_default=True)
def main(size: str, data_source: str, output: str) -> None:
    from optbench.bench.evaluation import bench_evaluation
    from optbench.bench.ingest import bench_ingest
    from optbench.bench.isolated import run_isolated
    from optbench.bench.notebook import compare_with_notebook
    from optbench.bench.pipeline import bench_pipeline, bench_steps
    from optbench.bench.training import bench_training
    from optbench.components.question.options import RunConfig
    from optbench.components.shared.datasets import FASHION_MNIST

    sizing = SIZES[size]
    train_limit = sizing.train_limit
    if size == "full" and data_source == "auto":
        data_source = FASHION_MNIST.offline[0]
    started = time.perf_counter()
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        "size": size,
        "data_source": data_source,
        "stages": {},
    }
    stages = results["stages"]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{results['host']}.json"

    def save(complete: bool = False) -> None:
        """Written after every stage: a bench that fails late (a full-size one runs for an hour) keeps the
        stages it measured, marked incomplete."""
        results["complete"] = complete
        path.write_text(json.dumps(results, indent=2) + "\n")

    click.echo(f"results: {path} (saved after every stage)", err=True)
    stages["notebook"] = compare_with_notebook(
        RunConfig(data_source=data_source, **sizing.notebook), sizing.notebook_repetitions
    )
    save()
    stages["ingest"] = bench_ingest(data_source, train_limit)
    save()
    config = RunConfig(
        optimizers=sizing.notebook.get("optimizers"),
        epochs=sizing.pipeline_epochs,
        train_limit=train_limit or 0,
        test_limit=sizing.notebook.get("test_limit", 0),
        data_source=data_source,
    )
    with tempfile.TemporaryDirectory() as work:
        dataset = _dataset(data_source, train_limit, Path(work))
        stages["training"] = {m: bench_training(dataset, m, rounds=sizing.rounds) for m in ("mlp", "cnn")}
        save()
        steps = bench_steps(config.resolve(), data_source, train_limit, Path(work) / "steps")
        stages["steps"] = {"suite": config.suite, "epochs": sizing.pipeline_epochs, **steps["steps"]}
        stages["evaluation"] = bench_evaluation(steps["models"], steps["dataset"], str(Path(work) / "eval"))
    save()
    parallel, sequential = bench_pipeline(config, parallelism=2), bench_pipeline(config, parallelism=1)
    stages["orchestration"] = {
        "pipeline_wall_seconds": parallel["wall_seconds"],
        "sum_of_step_seconds": steps["sum_seconds"],
        "ratio": parallel["wall_seconds"] / steps["sum_seconds"],
    }
    stages["fan_out"] = {
        "parallel_wall_seconds": parallel["wall_seconds"],
        "sequential_wall_seconds": sequential["wall_seconds"],
        "speedup": sequential["wall_seconds"] / parallel["wall_seconds"],
    }
    results["device"] = run_isolated("optbench.components.shared.devices:describe_device")["result"]
    if results["device"]["device"] == "GPU":  # the full seed-004 suite (all data, 10 epochs) on this GPU
        stages["gpu_seed004_full"] = {
            **bench_pipeline(RunConfig(data_source=data_source), parallelism=1),
            "device_name": results["device"]["device_name"],
        }
    results["seconds"] = time.perf_counter() - started
    save(complete=True)
    click.echo(markdown_table(results))
    click.echo(f"\nwritten: {path}")


def notebook_table(notebook: dict) -> list[str]:
    """The notebook ratio and where the difference goes, as Markdown lines."""
    walls = notebook["wall_seconds"]
    lines = [
        f"Default run ({notebook['suite']}) vs the notebook, {notebook['repetitions']} run(s) each, alternating: "
        f"median {statistics.median(walls['pipeline']):.1f} s vs {statistics.median(walls['notebook']):.1f} s, "
        f"ratio {notebook['ratio']:.2f} (of the minimums {notebook['ratio_of_minimums']:.2f}); "
        f"optbench run {_spread(walls['pipeline'])}, the notebook {_spread(walls['notebook'])}",
        "",
        "| part of the wall time | optbench run (s) | notebook (s) | difference (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {part} | {p['pipeline']:.1f} | {p['notebook']:.1f} | {p['difference']:+.1f} |"
        for part, p in notebook["breakdown"].items()
    ]
    return lines


def _spread(walls: list[float]) -> str:
    return f"{min(walls):.1f}-{max(walls):.1f} s"


def markdown_table(results: dict) -> str:
    s = results["stages"]
    rows = [
        (
            "ingest: Beam vs numpy IDX read (images/s)",
            s["ingest"]["beam_images_per_second"],
            s["ingest"]["numpy_images_per_second"],
            s["ingest"]["ratio"],
        )
    ]
    for model, t in s["training"].items():
        rows.append(
            (
                f"training {model}: ours vs plain model.fit (examples/s)",
                t["ours_examples_per_second"],
                t["plain_fit_examples_per_second"],
                t["ratio"],
            )
        )
    e, o, f = s["evaluation"], s["orchestration"], s["fan_out"]
    rows += [
        (
            "evaluation: the evaluate step (TFMA, its import included) vs Keras-style evaluate (s)",
            e["evaluate_seconds"],
            e["keras_seconds"],
            e["ratio"],
        ),
        (
            "orchestration: kfp.local wall vs sum of steps' own time (s)",
            o["pipeline_wall_seconds"],
            o["sum_of_step_seconds"],
            o["ratio"],
        ),
        (
            "fan-out: 2 training tasks at once vs one training every trial (s)",
            f["parallel_wall_seconds"],
            f["sequential_wall_seconds"],
            f["speedup"],
        ),
    ]
    lines = [*notebook_table(s["notebook"]), "", "| stage | ours | baseline | ratio |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {ours:,.1f} | {base:,.1f} | {ratio:.2f} |" for name, ours, base, ratio in rows]
    if "gpu_seed004_full" in s:
        g = s["gpu_seed004_full"]
        lines += ["", f"Full seed-004 suite on one {g['device_name']}: {g['wall_seconds']:.0f} s"]
    peaks = {k: v["peak_memory_mib"] for k, v in s["steps"].items() if isinstance(v, dict)}
    lines += ["", "| step | own seconds | peak memory (MiB) |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {s['steps'][k]['seconds']:.1f} | {mib:,.0f} |" for k, mib in peaks.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
