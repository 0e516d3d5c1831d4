"""One writer per run: the process working on a run folder holds a lock on a file in it.

Two `optbench run --resume` of one interrupted run, started a second apart,
would otherwise both run the remaining tasks into the same folder. The lock
is `fcntl.flock` on the run's OWNER_FILE: the kernel releases it when its
process ends, however it ends (SIGKILL, a laptop's battery), so a holder
that is gone never blocks anyone and nothing needs cleaning up by hand. The
file's text says who holds it (pid, host, since, what for): the message a
second writer gets, and the note of one that takes over from a holder that
is gone. A lock on a network file system that does not support flock is
taken as it comes: this guards one machine's processes, not a cluster's.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from optbench.layout import OWNER_FILE


class RunBusy(RuntimeError):
    """Another process is working on the run folder; the message says who."""


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace").strip()
    try:
        holder = json.loads(text) if text else None
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def describe(holder: dict | None) -> str:
    """'pid 4242 on host-a (optbench run --resume, since 2026-12-03T20:31:07Z)', or what is known of it."""
    if not holder:
        return "another process"
    what = f"{holder.get('command', 'optbench')}, since {holder.get('since', '?')}"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} ({what})"


@contextmanager
def owned(run_dir: Path, command: str) -> Iterator[str | None]:
    """Hold `run_dir` for this process while the block runs; yields a note when the folder's last holder is gone
    without letting go (a killed run being resumed), else None. Raises RunBusy, naming the holder, when
    another process holds it."""
    fd = os.open(run_dir / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(
                f"run folder {run_dir} is being written by {describe(_read(fd))}; wait for it to end, or stop it "
                "and resume the run"
            ) from None
        before = _read(fd)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        try:
            yield f"took over run folder {run_dir} from {describe(before)}, which is gone" if before else None
        finally:
            os.ftruncate(fd, 0)  # a folder nobody holds says so
    finally:
        os.close(fd)  # releases the lock


def holder(run_dir: Path) -> dict | None:
    """Who holds `run_dir` now (None: nobody): for a command that reads or publishes a run and must not take
    one that is still being written."""
    path = run_dir / OWNER_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
