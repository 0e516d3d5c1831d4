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
from components.train.optimizers import SEED_ARTICLE, validate_names

log = logging.getLogger(__name__)

# kfp.local runs at most two tasks at once; each training task gets its share of the cores.
LOCAL_PARALLELISM = 2


@dataclass
class RunConfig:
    optimizers: list[str] = field(default_factory=lambda: list(SEED_ARTICLE))
    model_name: str = "cnn"
    data_source: str = "auto"
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    validation_fraction: float = 0.1
    train_limit: int = 0  # 0: all
    test_limit: int = 0  # 0: all
    baseline: str = "sgd"
    beam_args: list[str] = field(default_factory=list)

    def validate(self) -> "RunConfig":
        """Every check that needs no data, before any work starts."""
        from components.train.models import MODELS

        validate_names(self.optimizers)
        if self.model_name not in MODELS:
            raise ValueError(f"unknown model {self.model_name!r}; valid: {', '.join(MODELS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (all) or positive, got {getattr(self, name)}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        return self


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path
    rows: list[dict]
    seconds: float


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def pipeline_arguments(config: RunConfig, run_id: str) -> dict:
    threads = max(1, (os.cpu_count() or 1) // LOCAL_PARALLELISM)
    settings = {"run_id": run_id, **asdict(config), "runner": "kfp.local (SubprocessRunner)",
                "versions": _versions()}
    return {
        "optimizers": config.optimizers, "model_name": config.model_name, "data_source": config.data_source,
        "epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed,
        "validation_fraction": config.validation_fraction, "train_limit": config.train_limit,
        "test_limit": config.test_limit, "baseline": config.baseline, "train_threads": threads,
        "beam_args": config.beam_args, "settings_json": json.dumps(settings),
    }


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("kfp", "tensorflow", "keras", "tensorflow-model-analysis", "apache-beam")}


class RunFailed(RuntimeError):
    """A pipeline step failed; the message ends with the tail of the run's log."""


def run_local(config: RunConfig, output: str | os.PathLike = "runs", run_id: str | None = None,
              verbose: bool = False) -> RunResult:
    """Validate, then run the whole pipeline with kfp.local; returns where the report is."""
    from kfp import local

    from components.ingest.pipeline import validate_source
    from optbench.progress import log_tail, progress_to_terminal
    from pipelines.pipeline import compare_optimizers

    config.validate()
    validate_source(config.data_source)  # a bad source stops here, before any task starts
    run_id = run_id or new_run_id()
    run_dir = Path(output).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "pipeline"),
               raise_on_error=True)
    started = time.perf_counter()
    log.info("run %s: %d optimizers, model %s, %d epochs -> %s", run_id, len(config.optimizers),
             config.model_name, config.epochs, run_dir)
    log_path = run_dir / "pipeline.log"
    try:
        with progress_to_terminal(log_path, verbose):
            task = compare_optimizers(**pipeline_arguments(config, run_id))
    except Exception as e:
        write_json_atomic(run_dir / "run.json", {"run_id": run_id, "status": "failed", "error": str(e),
                                                 "config": asdict(config)})
        raise RunFailed(f"run {run_id} failed: {e}\n--- end of {log_path} ---\n{log_tail(log_path)}") from e
    seconds = time.perf_counter() - started
    report_dir = publish_dir_atomic(task.output.path, run_dir / "report")
    rows = json.loads((report_dir / "comparison.json").read_text())
    write_json_atomic(run_dir / "run.json", {"run_id": run_id, "status": "succeeded", "seconds": seconds,
                                             "config": asdict(config), "report": str(report_dir)})
    return RunResult(run_id, run_dir, report_dir, rows, seconds)
