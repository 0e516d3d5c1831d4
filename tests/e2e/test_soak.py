"""A soak test: one suite run several times in a row into one output folder, pruned after every run.

A nightly comparison runs for months into the same folder: each run reads the history of the ones before it, and
`optbench runs --prune` trims the older ones. Whatever one run leaves behind (an open file, a lingering process,
state changed in the process, a prune that breaks the history or prunes the wrong run) adds up night after night,
and no single-run test sees it. Ten real runs, in this process, so that its own open file descriptors measure what
the host code (log redirection, locks, log handlers) leaks: every run succeeds, reads every earlier run, pruned or
not, and says nothing changed since the previous one; only the newest runs keep their bulk; disk use, the runs' logs,
file descriptors and child processes stay bounded.

`make test` runs it three times, keeping one run's bulk: the least that prunes a run, then shows what the folder
grows by after that. `make soak` runs it ten times, keeping three (OPTBENCH_SOAK_RUNS sets the count).
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from optbench.components.history.records import MAX_RUNS, earlier_runs
from optbench.components.question.options import RunConfig
from optbench.components.shared.schema import CHANGES_JSON, RECORD_JSON, REPORT_DIR, RUN_JSON
from optbench.layout import CACHE_DIR, PIPELINE_DIR, PIPELINE_LOG
from optbench.local_run import run_local
from optbench.retention import BULK, plan_prune, prune

pytestmark = pytest.mark.e2e

_RUNS = os.environ.get("OPTBENCH_SOAK_RUNS", "3").strip()
RUNS = int(_RUNS) if _RUNS.isdigit() else 0  # not a count: the test says so
# The newest runs of the suite, which keep their bulk: at least one run is pruned before the last, whose growth
# is then measured.
KEEP = max(1, min(3, RUNS - 2))
NAME = "soak"
SUITE = f"name: {NAME}\nmodel: mlp\nepochs: 1\nseeds: 1\noptimizers: [adam, sgd]\n"
# Two runs of one suite on the same data log the same lines; their lengths differ only in timings and ids.
LOG_SLACK = 1.25
# The bulk of the newest runs (models, data, task cache) varies a little from run to run: timings in its files.
BULK_SLACK = 0.1


@dataclass
class Seen:
    """One run: its id, its wall time, its folder's bytes when it finished, its log's bytes; and, once it was
    pruned, the output folder's bytes and bulk, this process's open fds, live children and wrappers of print."""

    run_id: str
    seconds: float
    run_bytes: int
    log_bytes: int
    total: int
    bulk: int
    fds: dict[int, str]
    children: list[int]
    print_wrappers: int


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each one is (the one the listing itself opens has closed by
    the time it would be read, and is left out)."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            continue
    return fds


def live_children() -> list[int]:
    """The pids of this process's child processes that are still there (running, or ended and not reaped)."""
    me, children = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me:  # after the command's name: state, then the parent's pid
            children.append(int(entry.name))
    return children


def wrappers(function: Callable, original: Callable) -> int:
    """How many functions wrap `original` to make `function` (each one calling the next, held in its closure)."""
    depth = 0
    while function is not original:
        inner = [c.cell_contents for c in getattr(function, "__closure__", None) or () if callable(c.cell_contents)]
        depth += 1
        if not inner:
            break
        function = inner[0]
    return depth


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def bulk_bytes(run_dir: Path) -> int:
    return sum(folder_bytes(run_dir / bulk) for bulk in BULK if (run_dir / bulk).is_dir())


def test_runs_into_one_folder_pruned_after_each_keep_history_changes_disk_and_descriptors_bounded(
    tmp_path: Path, idx_source: Path
) -> None:
    assert RUNS >= 3, f"OPTBENCH_SOAK_RUNS={_RUNS!r}: a count of at least 3 runs (one pruned, then growth seen)"
    suite, output = tmp_path / f"{NAME}.yaml", tmp_path / "runs"
    suite.write_text(SUITE)
    # As `optbench run --suite FILE --train-limit 500 --data-source IDX --output OUTPUT` builds it (cli/config.py).
    config = RunConfig(suite=str(suite), train_limit=500, data_source=str(idx_source))
    original_print = builtins.print
    seen: list[Seen] = []
    for i in range(RUNS):
        started = time.perf_counter()
        result = run_local(config, output)
        seconds = time.perf_counter() - started
        run_dir = result.run_dir
        assert run_dir.parent == output.resolve()
        meta = json.loads((run_dir / RUN_JSON).read_text())
        assert meta["status"] == "succeeded", meta
        assert (run_dir / REPORT_DIR / RECORD_JSON).is_file()
        assert sorted(r["optimizer"] for r in result.rows) == ["adam", "sgd"]
        assert all(r["status"] == "ok" for r in result.rows), result.rows

        # It read the history of every run before it, pruned or not, and nothing changed since the previous one:
        # the same settings, the same data, the same seed. Only the cost of a step may be flagged: this machine's
        # load moves it, and a 95% prediction interval flags one run in twenty by design.
        before = [s.run_id for s in seen]
        changes = json.loads((result.report_dir / CHANGES_JSON).read_text())
        assert json.loads((result.report_dir / RECORD_JSON).read_text())["changes"] == changes
        assert changes["earlier_runs"] == min(i, MAX_RUNS), changes
        assert changes["notes"] == [], "no earlier run was skipped"
        assert [f for f in changes["flags"] if f["kind"] != "step_cost"] == [], changes["flags"]
        assert changes["changed"] is bool(changes["flags"])
        assert (changes["since"] or {}).get("run_id") == (before[-1] if before else None), changes["since"]
        finished = (run_dir / PIPELINE_LOG).stat().st_size, folder_bytes(run_dir)

        plan, notes = plan_prune(output, keep=KEEP)
        assert notes == []
        _, notes = prune(plan)
        assert notes == []

        # Only the newest runs keep their bulk; the older ones keep what the history reads.
        run_ids = [*before, result.run_id]
        for n, run_id in enumerate(run_ids, start=1):
            kept, whole = output / run_id, run_id in run_ids[-KEEP:]
            assert [(kept / bulk).is_dir() for bulk in (PIPELINE_DIR, CACHE_DIR)] == [whole, whole], (
                f"after run {i + 1}: run {n} {'lost' if whole else 'kept'} its bulk; runs {run_ids}"
            )
            assert json.loads((kept / RUN_JSON).read_text())["status"] == "succeeded"
            assert (kept / REPORT_DIR / RECORD_JSON).is_file()
        history, notes = earlier_runs(str(output), NAME, "")
        assert [r["run_id"] for r in history] == run_ids[-MAX_RUNS:] and notes == []

        seen.append(
            Seen(
                result.run_id,
                seconds,
                finished[1],
                finished[0],
                folder_bytes(output),
                sum(bulk_bytes(output / r) for r in run_ids),
                open_fds(),
                live_children(),
                wrappers(builtins.print, original_print),
            )
        )

    print(
        f"\nsoak: seconds per run {[round(s.seconds) for s in seen]}\n"
        f"MB under the output after each run {[round(s.total / 1e6, 1) for s in seen]}, of which bulk "
        f"{[round(s.bulk / 1e6, 1) for s in seen]}\n"
        f"KB of each run's log {[round(s.log_bytes / 1e3) for s in seen]}\n"
        f"open fds {[len(s.fds) for s in seen]}; wrappers of print {[s.print_wrappers for s in seen]}"
    )

    # No file descriptor and no child process outlives its run: what the first run left open (files that imports
    # open lazily) is what every later run leaves. Nor does a run leave the process changed: print is print.
    first = seen[0].fds
    for n, s in enumerate(seen, start=1):
        assert s.fds.keys() == first.keys(), (
            f"after run {n}: opened {sorted(set(s.fds.items()) - set(first.items()))}, "
            f"closed {sorted(set(first.items()) - set(s.fds.items()))}"
        )
    assert [s.children for s in seen] == [[]] * RUNS
    assert [s.print_wrappers for s in seen] == [0] * RUNS, "a run left builtins.print wrapped"

    # Disk use is bounded. Each run's log is as long as the first's; pruning frees most of a run; from the run
    # after the first prune on, the folder grows by what the history keeps of each run (run.json, log, report)
    # and nothing else: the bulk stays that of the newest runs.
    assert all(s.log_bytes <= LOG_SLACK * seen[0].log_bytes for s in seen), [s.log_bytes for s in seen]
    for s in seen[:-KEEP]:
        assert folder_bytes(output / s.run_id) < s.run_bytes / 2, f"pruned run {s.run_id} kept most of its bytes"
    remains = {s.run_id: folder_bytes(output / s.run_id) - bulk_bytes(output / s.run_id) for s in seen}
    since = seen[KEEP]  # the run after which the first run was pruned
    grown = seen[-1].total - since.total
    allowed = sum(remains[s.run_id] for s in seen[KEEP + 1 :]) + BULK_SLACK * since.bulk
    assert grown <= allowed, f"runs {KEEP + 2}-{RUNS} added {grown:,} bytes, more than the {allowed:,.0f} expected"
