"""Retention: a run folder's bulk goes once newer runs of its suite have replaced it; its record stays.

A nightly comparison at full size adds its dataset, models, TFMA output and
task cache (a run's `pipeline/` and `cache/`, and the report's copy of the
TensorBoard event files) every night. What a suite's later runs need of an
earlier one is small: its run.json and its report (record.json, which the
history and "what changed" read, the page and comparison.json, which trend
reports read). So pruning keeps the newest `keep` runs of each suite whole
and, of the older ones, deletes only the bulk: no history, trend or "since
run X" ever points at a run that is gone. A pruned run cannot be resumed
from its cache (its run.json says it was pruned, and when). A run some
process is writing (`ownership`) is never touched.

Runs published to a bucket (gs://BUCKET/PREFIX/<suite>/<run_id>/) are pruned the
same way: beyond the newest `keep` of each suite, by the time they were
published, their dataset, models, evaluation and TensorBoard copy go, and
their run.json, log and report (record.json, which a history under the
suite's prefix reads) stay, named by their marker as before. A run that is
still being published has no marker, so no prune sees it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from optbench.components.shared.files import read_json, write_json_atomic
from optbench.components.shared.schema import REPORT_DIR, RUN_JSON, TENSORBOARD_DIR
from optbench.layout import CACHE_DIR, DATA_DIR, EVAL_DIR, MODELS_DIR, PIPELINE_DIR
from optbench.ownership import RunBusy, describe, holder, owned
from optbench.storage import Published, published_runs, unpublish

BULK = (PIPELINE_DIR, CACHE_DIR, f"{REPORT_DIR}/{TENSORBOARD_DIR}")  # what pruning deletes of a run folder
PUBLISHED_BULK = (DATA_DIR, EVAL_DIR, MODELS_DIR, f"{REPORT_DIR}/{TENSORBOARD_DIR}")  # and of a published run


@dataclass(frozen=True)
class Pruned:
    """One run's bulk to delete: the run, its suite, the paths and their size in bytes."""

    run_dir: Path
    suite: str
    paths: list[Path]
    size: int


@dataclass(frozen=True)
class PrunedPublished:
    """One published run's bulk to delete: the run, the object names (relative to the run) and their bytes."""

    run: Published
    names: list[str]
    size: int


def _check_keep(keep: int) -> None:
    if keep < 1:
        raise ValueError(f"--keep must be at least 1 (the newest run of each suite stays whole), got {keep}")


def _pruned_note() -> dict:
    return {"at": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _suite(record: dict) -> str:
    """The run's suite, as run.json names it (the resolved suite, else the config's)."""
    suite = record.get("suite")
    if isinstance(suite, dict) and isinstance(suite.get("name"), str):
        return suite["name"]
    config = record.get("config")
    return str(config.get("suite", "?")) if isinstance(config, dict) else "?"


def plan_prune(root: Path, keep: int) -> tuple[list[Pruned], list[str]]:
    """What pruning `root` (a folder of runs) down to the newest `keep` runs of each suite deletes, oldest
    first, and notes on the runs left alone (being written, unreadable)."""
    _check_keep(keep)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder of runs")
    by_suite: dict[str, list[tuple[float, Path]]] = {}
    notes = []
    for run_dir in sorted(p for p in root.iterdir() if (p / RUN_JSON).is_file()):
        try:
            record = read_json(run_dir / RUN_JSON)
        except ValueError as e:
            notes.append(f"{run_dir.name}: run.json unreadable ({e}): left alone")
            continue
        if not isinstance(record, dict):
            notes.append(f"{run_dir.name}: run.json is not a run record: left alone")
            continue
        by_suite.setdefault(_suite(record), []).append(((run_dir / RUN_JSON).stat().st_mtime, run_dir))
    plan = []
    for suite, runs in sorted(by_suite.items()):
        for _, run_dir in sorted(runs, reverse=True)[keep:]:
            if (writer := holder(run_dir)) is not None:
                notes.append(f"{run_dir.name}: being written by {describe(writer)}: left alone")
                continue
            paths = [run_dir / p for p in BULK if (run_dir / p).exists()]
            if paths:
                plan.append(Pruned(run_dir, suite, paths, sum(map(_size, paths))))
    return sorted(plan, key=lambda p: (p.run_dir / RUN_JSON).stat().st_mtime), notes


def prune(plan: list[Pruned]) -> tuple[int, list[str]]:
    """Delete each planned run's bulk, holding the run meanwhile, and say so in its run.json; returns the bytes
    freed and notes on the runs some process took up since the plan was made (left alone)."""
    freed, notes = 0, []
    for item in plan:
        try:
            with owned(item.run_dir, "optbench runs --prune"):
                for path in item.paths:
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
                run_json = item.run_dir / RUN_JSON
                record, times = read_json(run_json), run_json.stat()
                record["pruned"] = _pruned_note() | {"deleted": [str(p.relative_to(item.run_dir)) for p in item.paths]}
                write_json_atomic(run_json, record)
                os.utime(run_json, ns=(times.st_atime_ns, times.st_mtime_ns))  # its age ranks it: pruning keeps it
        except RunBusy as e:
            notes.append(f"{item.run_dir.name}: {e}: left alone")
            continue
        freed += item.size
    return freed, notes


def plan_prune_published(root: str, keep: int, **remote) -> tuple[list[PrunedPublished], list[str]]:
    """What pruning the runs published under `root` (gs://BUCKET/PREFIX) down to the newest `keep` of each
    suite deletes, oldest first, and notes on the markers left alone. `remote`: storage's client and retry."""
    _check_keep(keep)
    runs, notes = published_runs(root, **remote)
    by_suite: dict[str, list[Published]] = {}
    for run in runs:
        by_suite.setdefault(run.suite, []).append(run)
    plan = []
    for published in by_suite.values():
        for run in sorted(published, key=lambda r: r.published_at, reverse=True)[keep:]:
            names = sorted(n for n in run.files if n.startswith(tuple(f"{bulk}/" for bulk in PUBLISHED_BULK)))
            if names:
                plan.append(PrunedPublished(run, names, sum(run.files[n]["size"] for n in names)))
    return sorted(plan, key=lambda p: p.run.published_at), notes


def prune_published(plan: list[PrunedPublished], **remote) -> int:
    """Delete each planned published run's bulk, saying so in its marker; returns the bytes freed."""
    for item in plan:
        unpublish(item.run, item.names, {"pruned": _pruned_note() | {"deleted": len(item.names)}}, **remote)
    return sum(item.size for item in plan)
