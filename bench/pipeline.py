"""Orchestration and fan-out: what KFP local costs on top of the steps' own work, and what parallel trials save.

Each step's own time and peak memory are measured by running its logic in a
fresh process (optbench.bench.isolated), timed around the call only: no interpreter
start, no TensorFlow import. The pipeline runs are
`optbench run` itself (kfp.local), once with the default two trials at a time
and once with one, on the same suite and data.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from optbench.bench.isolated import run_isolated
from optbench.components.shared.files import read_json
from optbench.layout import RUN_JSON


def step(fn: str, **kwargs) -> dict:
    """One step's own seconds and peak memory (MiB), in a fresh process."""
    outcome = run_isolated(fn, **kwargs)
    return {"seconds": outcome["seconds"], "peak_memory_mib": outcome["peak_memory_mib"]}


def bench_steps(suite: dict, data_source: str, train_limit: int | None, work: Path) -> dict:
    """Every step of the pipeline, one after another, each in its own process."""
    from optbench.components.plan.plan import baseline_trial
    from optbench.components.question import suites
    from optbench.components.shared.artifacts import saved_models_by_trial

    dataset, initial, cost, evaluation, report = (
        str(work / d) for d in ("dataset", "initial", "step_cost", "evaluation", "report")
    )
    steps = {
        "ingest": step(
            "optbench.components.ingest.ingest:run_ingest",
            source=data_source,
            output_dir=dataset,
            train_limit=train_limit,
        )
    }
    steps["init_model"] = step(
        "optbench.components.init_model.init_model:run_init_model",
        model_name=suite["model"],
        seed=0,
        output_dir=initial,
    )
    trials = suites.expand(suite)
    model_dirs = [str(work / "models" / t["trial"]) for t in trials]
    for trial, model_dir in zip(trials, model_dirs):
        steps[f"train {trial['trial']}"] = step(
            "optbench.components.train.train:run_train",
            dataset_dir=dataset,
            initial_dir=initial,
            output_dir=model_dir,
            trial=trial,
            epochs=suite["epochs"],
        )
    steps["step_cost"] = step(
        "optbench.components.step_cost.step_cost:run_step_cost",
        dataset_dir=dataset,
        initial_dir=initial,
        model_dirs=model_dirs,
        output_dir=cost,
    )
    steps["evaluate"] = step(
        "optbench.components.evaluate.evaluate:run_evaluate",
        models=saved_models_by_trial(model_dirs),
        dataset_dir=dataset,
        output_dir=evaluation,
        baseline=baseline_trial(suite, trials) or None,
    )
    steps["report"] = step(
        "optbench.components.report.report:run_report",
        dataset_dir=dataset,
        model_dirs=model_dirs,
        evaluation_dir=evaluation,
        step_cost_dir=cost,
        settings={"run_id": "bench"},
        output_dir=report,
    )
    return {
        "steps": steps,
        "models": saved_models_by_trial(model_dirs),
        "dataset": dataset,
        "sum_seconds": sum(s["seconds"] for s in steps.values()),
    }


def bench_pipeline(config, parallelism: int) -> dict:
    """Wall seconds of the whole local pipeline (`optbench run`'s own code path)."""
    from optbench.local_run import run_local

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = run_local(config, out, parallelism=parallelism)
        wall = time.perf_counter() - started
        record = read_json(result.run_dir / RUN_JSON)
    return {"parallelism": parallelism, "wall_seconds": wall, "status": record["status"]}
