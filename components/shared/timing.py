"""One line per step in the run's log saying when its process started, when its work began and ended, and how
much of that was spent importing modules.

The benchmark splits a pipeline's wall time with
these lines into process starts and imports, each step's own work, and the
time no task ran (kfp.local between tasks). The steps import TensorFlow, Beam
and TFMA lazily, inside the call, so the imports are counted there: the time
spent in the outermost `import` statements of the main thread.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from optbench.components.shared.task_exit import exit_when_done

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


@contextmanager
def counting_imports() -> Iterator[list[float]]:
    """Within the block, add the seconds the main thread spends in outermost imports to the yielded [total]."""
    spent, depth, real = [0.0], [0], builtins.__import__
    main = threading.main_thread()

    def counted(*args, **kwargs):
        if depth[0] or threading.current_thread() is not main:
            return real(*args, **kwargs)
        depth[0] += 1
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            depth[0] -= 1
            spent[0] += time.perf_counter() - started

    builtins.__import__ = counted
    try:
        yield spent
    finally:
        builtins.__import__ = real


def timed(step: str) -> Callable[[F], F]:
    """Print `MARKER {"step", "process", "start", "imports", "end"}` (epoch seconds; imports in seconds) when the
    decorated step returns, and let its task process skip the libraries' shutdown (`exit_when_done`)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.time()
            with counting_imports() as imports:
                result = fn(*args, **kwargs)
            line = {
                "step": step,
                "process": process_started(),
                "start": start,
                "imports": imports[0],
                "end": time.time(),
            }
            print(MARKER + json.dumps(line), flush=True)
            exit_when_done()
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
