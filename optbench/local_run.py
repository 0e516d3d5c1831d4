"""Run the comparison pipeline on this machine with `kfp.local`.

Each run gets its own folder `<output>/<run_id>/`: KFP's artifacts under
`pipeline/`, and, only once every step has succeeded, the report under
`report/` (published atomically, so a failed or killed run never leaves
something that looks like a finished report) and `run.json`.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from components.common.files import publish_dir_atomic, write_json_atomic
from components.plan import suites
from components.plan.suites import DEFAULT_SUITE
from components.train.optimizers import validate_names

log = logging.getLogger(__name__)

# kfp.local runs at most two tasks at once; each training task gets its share of the cores.
LOCAL_PARALLELISM = 2
RUN_FILE = "run.json"


@dataclass
class RunConfig:
    """What `optbench run` was asked for: a suite, the CLI's overrides, and the data options."""

    suite: str = DEFAULT_SUITE
    optimizers: list[str] | None = None
    model_name: str | None = None
    epochs: int | None = None
    batch_size: int | str | None = None
    seeds: int | None = None
    seed: int = 0
    lr_grid: list[float] | None = None
    baseline: str | None = None
    data_source: str = "auto"
    validation_fraction: float = 0.1
    train_limit: int = 0  # 0: all
    test_limit: int = 0  # 0: all
    mixed_precision: bool = False
    xla: bool = False
    beam_args: list[str] = field(default_factory=list)

    def resolve(self) -> dict:
        """The suite with the overrides applied, validated: every check that needs no data."""
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (all) or positive, got {getattr(self, name)}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.optimizers is not None:
            validate_names(self.optimizers)
        return suites.with_overrides(suites.load(self.suite), optimizers=self.optimizers, model=self.model_name,
                                     epochs=self.epochs, batch_size=self.batch_size, seeds=self.seeds,
                                     first_seed=self.seed, lr_grid=self.lr_grid, baseline=self.baseline)


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path
    rows: list[dict]
    seconds: float
    suite: str


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def baseline_trial(suite: dict, trials: list[dict]) -> str:
    """The trial TFMA compares against: the baseline variant's, at the lowest seed ('' when none)."""
    matching = sorted((t["seed"], t["trial"]) for t in trials if t["variant"] == suite.get("baseline"))
    return matching[0][1] if matching else ""


def pipeline_arguments_for(suite: dict, *, run_id: str, data_source: str = "auto", validation_fraction: float = 0.1,
                           train_limit: int = 0, test_limit: int = 0, beam_args: list[str] | None = None,
                           train_threads: int = 0, mixed_precision: bool = False, xla: bool = False,
                           runner: str = "kfp") -> dict:
    """The pipeline's parameters for a validated suite (used locally and when compiling for a cluster)."""
    trials = suites.expand(suite)
    settings = {"run_id": run_id, "suite": suite["name"], "description": suite["description"],
                "model_name": suite["model"], "epochs": suite["epochs"],
                "batch_size": suite.get("batch_sizes") or suite["batch_size"], "seeds": suite["seeds"],
                "optimizers": [o["label"] for o in suite["optimizers"]], "lr_grid": suite.get("lr_grid"),
                "baseline": suite.get("baseline"), "thresholds": suite["thresholds"], "data_source": data_source,
                "train_limit": train_limit, "test_limit": test_limit, "mixed_precision": mixed_precision,
                "xla": xla, "runner": runner, "versions": _versions()}
    return {
        "trials": [json.dumps(t) for t in trials], "seeds": suite["seeds"], "model_name": suite["model"],
        "data_source": data_source, "epochs": suite["epochs"], "validation_fraction": validation_fraction,
        "train_limit": train_limit, "test_limit": test_limit, "baseline_trial": baseline_trial(suite, trials),
        "thresholds_json": json.dumps(suite["thresholds"]), "train_threads": train_threads,
        "mixed_precision": mixed_precision, "xla": xla, "beam_args": list(beam_args or []),
        "settings_json": json.dumps(settings),
    }


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("kfp", "tensorflow", "keras", "tensorflow-model-analysis", "apache-beam")}


class RunFailed(RuntimeError):
    """A pipeline step failed; the message ends with the tail of the run's log."""


def _record(run_dir: Path, **fields) -> None:
    write_json_atomic(run_dir / RUN_FILE, fields)


def run_local(config: RunConfig, output: str | os.PathLike = "runs", run_id: str | None = None,
              verbose: bool = False, resume: bool = False, parallelism: int = LOCAL_PARALLELISM) -> RunResult:
    """Validate, then run the whole pipeline with kfp.local; returns where the report is.

    Every run caches its tasks' outputs in its own folder (`cache/`), so a run
    that was killed can be resumed (`resume=True`, same run_id): finished tasks
    are served from the cache and only the rest run again. `parallelism` is how
    many trials train at once (the benchmark compares 1 with the default).
    """
    from kfp import local

    from components.ingest.pipeline import validate_source
    from optbench.progress import log_tail, progress_to_terminal
    from pipelines.pipeline import build_pipeline

    suite = config.resolve()
    validate_source(config.data_source)  # a bad source stops here, before any task starts
    run_id = run_id or new_run_id()
    run_dir = Path(output).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=resume)  # a new run never shares a folder
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "pipeline"),
               raise_on_error=True, enable_caching=True, cache_root=str(run_dir / "cache"))
    started = time.perf_counter()
    arguments = pipeline_arguments_for(
        suite, run_id=run_id, data_source=config.data_source, validation_fraction=config.validation_fraction,
        train_limit=config.train_limit, test_limit=config.test_limit, beam_args=config.beam_args,
        train_threads=max(1, (os.cpu_count() or 1) // parallelism), mixed_precision=config.mixed_precision,
        xla=config.xla, runner="kfp.local (SubprocessRunner)")
    log.info("run %s%s: suite %s, %d trials, model %s, %d epochs -> %s", run_id, " (resumed)" if resume else "",
             suite["name"], len(arguments["trials"]), suite["model"], suite["epochs"], run_dir)
    _record(run_dir, run_id=run_id, status="running", pid=os.getpid(), config=asdict(config), suite=suite)
    log_path = run_dir / "pipeline.log"
    try:
        with progress_to_terminal(log_path, verbose):
            task = build_pipeline(parallelism=parallelism)(**arguments)
    except Exception as e:
        _record(run_dir, run_id=run_id, status="failed", error=str(e), config=asdict(config), suite=suite)
        raise RunFailed(f"run {run_id} failed: {e}\n--- end of {log_path} ---\n{log_tail(log_path)}") from e
    seconds = time.perf_counter() - started
    report_dir = publish_dir_atomic(task.output.path, run_dir / "report")
    rows = json.loads((report_dir / "comparison.json").read_text())
    _record(run_dir, run_id=run_id, status="succeeded", seconds=seconds, config=asdict(config), suite=suite,
            report=str(report_dir))
    return RunResult(run_id, run_dir, report_dir, rows, seconds, suite["name"])


def resume_local(run_id: str, output: str | os.PathLike = "runs", verbose: bool = False) -> RunResult:
    """Finish a run that was interrupted: same settings, same folder, finished tasks from the cache."""
    run_dir = Path(output).resolve() / run_id
    record_path = run_dir / RUN_FILE
    if not record_path.exists():
        raise ValueError(f"no run {run_id!r} to resume in {Path(output).resolve()} (no {RUN_FILE})")
    record = json.loads(record_path.read_text())
    if record["status"] == "succeeded":
        raise ValueError(f"run {run_id} already succeeded; its report is {run_dir / 'report'}")
    return run_local(RunConfig(**record["config"]), output, run_id=run_id, verbose=verbose, resume=True)
