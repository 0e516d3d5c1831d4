"""One line per step in the run's log saying when its process started and when its own work began and ended.

The benchmark (optbench/bench/notebook.py) splits a pipeline's wall time with
these lines into process starts and imports, each step's own work, and the
time no task ran (kfp.local between tasks). A line costs nothing else.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from typing import TypeVar

MARKER = "optbench-timing "
F = TypeVar("F", bound=Callable)


def process_started() -> float:
    """This process's start, in seconds since the epoch (Linux /proc; the call's own time elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/uptime") as f:
            boot = time.time() - float(f.read().split()[0])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def timed(step: str) -> Callable[[F], F]:
    """Print `MARKER {"step", "process", "start", "end"}` (epoch seconds) when the decorated step returns."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.time()
            result = fn(*args, **kwargs)
            line = {"step": step, "process": process_started(), "start": start, "end": time.time()}
            print(MARKER + json.dumps(line), flush=True)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
