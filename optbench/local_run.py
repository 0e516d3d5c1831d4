"""Run the comparison pipeline on this machine with `kfp.local`.

Each run gets its own folder `<output>/<run_id>/` (the run layout): KFP's
artifacts under `pipeline/`, and, only once every step has succeeded, the
report under `report/` (published atomically, so a failed or killed run never
leaves something that looks like a finished report).
"""

from __future__ import annotations

import builtins
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from optbench.components.question.form import to_form
from optbench.components.question.options import RunConfig
from optbench.components.question.suites import expand, round_seeds
from optbench.components.shared.files import publish_dir_atomic, read_json, write_json_atomic
from optbench.components.shared.notify import ENV as NOTIFY_ENV
from optbench.components.shared.notify import message, post
from optbench.components.shared.schema import COMPARISON_JSON
from optbench.components.shared.untrusted import SQLITE_URI, plain_name, webhook_url
from optbench.layout import CACHE_DIR, PIPELINE_DIR, PIPELINE_LOG, REPORT_DIR, RUN_JSON
from optbench.ownership import owned

log = logging.getLogger(__name__)

# kfp.local runs at most two tasks at once; each training task gets its share of the cores.
LOCAL_PARALLELISM = 2
# How tasks run: as processes of this interpreter, or each in a container of the CPU image.
RUNNERS = ("subprocess", "docker")


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path
    rows: list[dict]
    seconds: float
    suite: str


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class RunFailed(RuntimeError):
    """A pipeline step failed; the message ends with the tail of the run's log."""


def _record(run_dir: Path, **fields) -> None:
    write_json_atomic(run_dir / RUN_JSON, fields)


def run_local(
    config: RunConfig,
    output: str | os.PathLike = "runs",
    run_id: str | None = None,
    verbose: bool = False,
    resume: bool = False,
    parallelism: int = LOCAL_PARALLELISM,
    runner: str = "subprocess",
    image: str | None = None,
    notify: str = "",
) -> RunResult:
    """Validate, then run the whole pipeline with kfp.local; returns where the report is.

    `notify` is a webhook URL: the report step alerts it when the run
    finishes or its answer changed, this function when the run fails. It reaches the tasks in their
    environment, never as a parameter, and is kept out of run.json and the log.

    `runner` "docker" runs every task in `image` (default: the CPU image
    `make images` built from this commit) with kfp.local's DockerRunner.

    Every run caches its tasks' outputs in its own folder (`cache/`), so a run
    that was killed can be resumed (`resume=True`, same run_id): finished tasks
    are served from the cache, once their files are verified against the
    checksums taken when they finished, and only the rest run again. `parallelism` is how
    many trials train at once (the benchmark compares 1 with the default).
    """
    from kfp import local

    from optbench.components.ingest.ingest import validate_source
    from optbench.components.ingest.sources import for_tasks
    from optbench.pipelines.pipeline import build_pipeline
    from optbench.progress import log_tail, progress_to_terminal
    from optbench.verified_cache import install as install_verified_cache

    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; known: {', '.join(RUNNERS)}")
    notify = webhook_url(notify)
    suite = config.resolve()
    resolved = validate_source(config.data_source, dataset=config.dataset or None)  # bad data stops here
    config = replace(config, data_source=for_tasks(config.data_source, resolved))
    if Path(config.data_source).exists():  # a task's working folder is not ours: name local data absolutely
        config = replace(config, data_source=str(Path(config.data_source).resolve()))
    if config.mlflow_uri.startswith(SQLITE_URI):  # likewise a local MLflow store (an absolute path stays as it is)
        store = Path(config.mlflow_uri.removeprefix(SQLITE_URI)).resolve()
        config = replace(config, mlflow_uri=f"{SQLITE_URI}{store}")
    configure = None
    if runner == "docker":
        from optbench.docker_run import check_ready, docker_runner
        from optbench.images import image_ref

        image = image or image_ref("cpu")
        data = [config.data_source, resolved.folder]
        check_ready(image, data)
        label = f"kfp.local (DockerRunner, {image})"

        def configure(task, _step: str) -> None:
            task.set_container_image(image)
    else:
        image, label = None, "kfp.local (SubprocessRunner)"
    run_id = plain_name(run_id or new_run_id(), "run id")
    if not config.history_root:  # the suite's earlier runs are the output folder's
        config = replace(config, history_root=str(Path(output).resolve()))
    form = to_form(config)  # loads and checks the user's own model: before the run's folder exists
    pipeline = build_pipeline(
        configure,
        parallelism=parallelism,
        train_threads=max(1, (os.cpu_count() or 1) // parallelism),
        beam_args=config.beam_args,
        runner=label,
        run_id=run_id,
        rounds=len(round_seeds(suite)),
    )
    run_dir = Path(output).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=resume)  # a new run never shares a folder
    with owned(run_dir, "optbench run --resume" if resume else "optbench run") as took_over:
        if took_over:
            log.warning(took_over)
        if resume and read_json(run_dir / RUN_JSON).get("status") == "succeeded":  # it finished while we waited
            raise ValueError(f"run {run_id} already succeeded; its report is {run_dir / REPORT_DIR}")
        local.init(
            runner=(
                docker_runner(run_dir / PIPELINE_DIR, data, {NOTIFY_ENV: notify} if notify else {})
                if runner == "docker"
                else local.SubprocessRunner(use_venv=False)
            ),
            pipeline_root=str(run_dir / PIPELINE_DIR),
            raise_on_error=True,
            enable_caching=True,
            cache_root=str(run_dir / CACHE_DIR),
        )
        install_verified_cache(str(run_dir / CACHE_DIR))
        started = time.perf_counter()
        log.info(
            "run %s%s: suite %s, %d trials, model %s, %d epochs -> %s",
            run_id,
            " (resumed)" if resume else "",
            suite["name"],
            len(expand(suite)),
            suite["model"],
            suite["epochs"],
            run_dir,
        )
        how = {"config": asdict(config), "suite": suite, "runner": runner, "image": image}
        log_path = run_dir / PIPELINE_LOG
        try:  # a full disk may refuse any write here, ours or a task's: each way ends in the same message
            _record(run_dir, run_id=run_id, status="running", pid=os.getpid(), **how)
            with progress_to_terminal(log_path, verbose), _task_environment(NOTIFY_ENV, notify), _print_kept():
                task = pipeline(**form)
            seconds = time.perf_counter() - started
            report_dir = publish_dir_atomic(task.output.path, run_dir / REPORT_DIR)
        except Exception as e:
            alert = post(message("failed", suite["name"], run_id, error=str(e), report=str(log_path)), url=notify)
            with suppress(OSError):  # the disk that failed the run may refuse its record too; the message says it all
                _record(
                    run_dir, run_id=run_id, status="failed", error=str(e), **how, **({"notify": alert} if alert else {})
                )
            said = f"\nalert: {alert}" if alert else ""
            tail = log_tail(log_path)
            if cause := _storage_fault(e, tail, run_dir):  # first the line that matters: folder, cause, way out
                said = f"\n{run_dir}: {cause}; make room or fix the folder, then `optbench run --resume {run_id}`{said}"
            raise RunFailed(f"run {run_id} failed: {e}{said}\n--- end of {log_path} ---\n{tail}") from e
        rows = read_json(report_dir / COMPARISON_JSON)
        _record(
            run_dir,
            run_id=run_id,
            status="succeeded",
            seconds=seconds,
            report=str(report_dir),
            **how,
        )
        return RunResult(run_id, run_dir, report_dir, rows, seconds, suite["name"])


STORAGE_FAULTS = ("No space left on device", "Read-only file system", "Disk quota exceeded", "Permission denied")
# Free space below which a failed run's disk counts as full (a task's last write did not fit).
FULL_DISK_BYTES = 64 * 1024


def _storage_fault(error: BaseException, log: str, run_dir: Path) -> str:
    """What a failure says about the disk the run wrote to (a full disk, a read-only folder), lower-cased, or ''.

    The error, or a task's in the log, names it; where the disk was too full even for the task to log its
    error, the disk's own free space does.
    """
    said = next((fault.lower() for fault in STORAGE_FAULTS if fault in f"{error}\n{log}"), "")
    return said or (STORAGE_FAULTS[0].lower() if _free_bytes(run_dir) < FULL_DISK_BYTES else "")


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return FULL_DISK_BYTES


@contextmanager
def _print_kept() -> Iterator[None]:
    """builtins.print as it was, whatever the run left. kfp.local indents each task's output by swapping
    builtins.print in and out around it, from the threads that run tasks side by side: when two interleave, the
    swap is left in, and every later run in this process (a benchmark, a soak test) nested one deeper."""
    kept = builtins.print
    try:
        yield
    finally:
        builtins.print = kept


@contextmanager
def _task_environment(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` (unset when empty) for the tasks this process starts, restored afterwards."""
    before = os.environ.pop(name, None)
    if value:
        os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
        if before is not None:
            os.environ[name] = before


def resume_local(run_id: str, output: str | os.PathLike = "runs", verbose: bool = False, notify: str = "") -> RunResult:
    """Finish a run that was interrupted: same settings, same folder, finished tasks from the cache."""
    run_dir = Path(output).resolve() / plain_name(run_id, "run id")
    record_path = run_dir / RUN_JSON
    if not record_path.exists():
        raise ValueError(f"no run {run_id!r} to resume in {Path(output).resolve()} (no {RUN_JSON})")
    record = read_json(record_path)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"{record_path}: not a run record (a mapping with status and config)")
    if record.get("status") == "succeeded":
        raise ValueError(f"run {run_id} already succeeded; its report is {run_dir / REPORT_DIR}")
    if record.get("pruned"):
        raise ValueError(f"run {run_id} was pruned: its cache is gone; start a new run")
    try:
        config = RunConfig(**record["config"])
    except TypeError as e:
        raise ValueError(f"{record_path}: its config is not one this optbench runs ({e})") from None
    return run_local(
        config,
        output,
        run_id=run_id,
        verbose=verbose,
        resume=True,
        runner=record.get("runner", "subprocess"),
        image=record.get("image"),
        notify=notify,
    )
