"""One writer per run: the lock a run folder's writer holds, refused to a second writer with who holds it, taken
over from a writer that is gone, and kept out of the way of publishing and trend reports."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import hold, optbench

from optbench.layout import OWNER_FILE, RUN_JSON
from optbench.ownership import RunBusy, holder, owned
from optbench.storage import PublishError, publish_run


def test_a_second_writer_is_refused_with_who_holds_the_folder(tmp_path):
    proc = hold(tmp_path)
    try:
        busy = rf"being written by pid {proc.pid} on .*optbench run --resume, since 20"
        with pytest.raises(RunBusy, match=busy), owned(tmp_path, "optbench run"):
            pass
        assert holder(tmp_path)["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_writer_killed_without_letting_go_is_taken_over_and_said_so(tmp_path):
    proc = hold(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # no finally runs: the file still names it, the kernel dropped its lock
    proc.wait()
    assert json.loads((tmp_path / OWNER_FILE).read_text())["pid"] == proc.pid
    assert holder(tmp_path) is None
    with owned(tmp_path, "optbench run --resume") as note:
        assert note is not None and f"from pid {proc.pid}" in note and "which is gone" in note
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path) is None and (tmp_path / OWNER_FILE).read_text() == ""  # let go: nothing to take over
    with owned(tmp_path, "optbench run") as note:
        assert note is None


def test_one_process_cannot_hold_a_folder_twice(tmp_path):
    busy = pytest.raises(RunBusy, match=f"pid {os.getpid()}")
    with owned(tmp_path, "optbench run"), busy, owned(tmp_path, "optbench run --resume"):
        pass


def test_a_run_being_written_is_neither_resumed_nor_published_nor_written_into(tmp_path, idx_source):
    """The issue's case: a second `run --resume` of an interrupted run while the first works on it is refused at
    once, before it runs anything; so are a publish of it and a trend report into its folder."""
    runs = tmp_path / "runs"
    run_dir = runs / "r1"
    run_dir.mkdir(parents=True)
    config = {"suite": "seed-004", "optimizers": ["adam"], "epochs": 1, "data_source": str(idx_source)}
    (run_dir / RUN_JSON).write_text(json.dumps({"run_id": "r1", "status": "failed", "config": config}))
    proc = hold(run_dir)
    try:
        started = time.monotonic()
        result = optbench("run", "--resume", "r1", "--output", str(runs))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"is being written by pid {proc.pid}" in result.stderr and time.monotonic() - started < 60
        assert sorted(p.name for p in run_dir.iterdir()) == [OWNER_FILE, RUN_JSON]  # nothing ran, nothing written
        with pytest.raises(PublishError, match=f"still being written by pid {proc.pid}"):
            publish_run(run_dir, "gs://bucket/runs", "seed-004")
        result = optbench("report", "--compare", "a", "b", "--runs-dir", str(runs), "--output", str(run_dir / "t"))
        assert result.returncode != 0 and f"still being written by pid {proc.pid}" in result.stderr
    finally:
        proc.kill()
        proc.wait()
