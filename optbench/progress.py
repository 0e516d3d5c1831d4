"""Readable progress for local runs.

kfp.local prints every task's full executor input and output (hundreds of
JSON lines per task). We send all of it to the run's `pipeline.log` and show
the terminal only the lines a person follows a run by: task start and end,
a cache entry that failed verification, the ingest note, each training
epoch, and errors.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTOR_PREFIX = re.compile(r"^\s*\[KFP Executor [^\]]*?(INFO|WARNING|ERROR)\]:\s*")
_PROGRESS = re.compile(
    r"Executing task|finished with status|Running pipeline|cache hit|failed verification|"
    r"\b(ingest|evaluate|report):|train\[[^\]]+\] epoch|MNIST:|Error|Traceback|FAILURE"
)


def progress_line(raw: str) -> str | None:
    """The line as shown in the terminal, or None to keep it only in the log."""
    line = ANSI.sub("", raw.rstrip("\n"))
    if not _PROGRESS.search(line):
        return None
    return _EXECUTOR_PREFIX.sub("    ", line)


@contextmanager
def progress_to_terminal(log_path: Path, verbose: bool = False) -> Iterator[None]:
    """Redirect this process's stdout and stderr (and so its subprocesses') to `log_path`.

    A thread tails the log and echoes the progress lines (all lines with
    `verbose`) to the real terminal. Redirecting the file descriptors, not
    sys.stdout, is what catches the task subprocesses' output.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        start = log.tell()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        done = threading.Event()
        tail = threading.Thread(target=_tail, args=(log_path, terminal, done, verbose, start), daemon=True)
        tail.start()
        try:
            yield
        finally:
            with suppress(OSError):  # a full disk refuses the last lines; the caller says why the run ended
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            done.set()
            tail.join(timeout=10)
            terminal.close()


def _tail(path: Path, terminal, done: threading.Event, verbose: bool, start: int) -> None:
    pending = ""
    with open(path, encoding="utf-8", errors="replace") as f:
        f.seek(start)  # a resumed run appends to the log: show only its own lines
        while True:
            chunk = f.readline()
            if not chunk:
                if done.is_set():
                    break
                time.sleep(0.2)
                continue
            pending += chunk
            if not pending.endswith("\n"):
                continue
            shown = pending.rstrip("\n") if verbose else progress_line(pending)
            if shown is not None:
                terminal.write(shown + "\n")
            pending = ""


def log_tail(log_path: Path, lines: int = 40) -> str:
    """The end of the log, for the error message of a failed run."""
    text = ANSI.sub("", log_path.read_text(errors="replace")) if log_path.exists() else ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
