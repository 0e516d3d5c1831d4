"""Run one measurement in a fresh process.

Timings taken one after another in a single process are biased: the second
TensorFlow model trained in a process runs up to 1.5x faster than the first
(warm allocator and kernel caches), whichever it is. Each measurement gets a
new interpreter; what it returns is timed inside, around the call alone, and
its peak memory is the process's own high-water mark (VmHWM; ru_maxrss would
carry the parent's over).
"""

from __future__ import annotations

import importlib
import multiprocessing
import time
from typing import Any


def _peak_memory_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(queue, fn: str, kwargs: dict) -> None:
    module, name = fn.rsplit(":", 1)
    func = getattr(importlib.import_module(module), name)
    started = time.perf_counter()
    result = func(**kwargs)
    queue.put({"result": result, "seconds": time.perf_counter() - started, "peak_memory_mib": _peak_memory_mib()})


def run_isolated(fn: str, **kwargs: Any) -> dict:
    """`module:function(**kwargs)` in a fresh process: {"result", "seconds", "peak_memory_mib"}."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, kwargs))
    proc.start()
    outcome = queue.get()  # before join: a large result would block the child's exit
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"{fn} failed in its benchmark process (exit {proc.exitcode})")
    return outcome
