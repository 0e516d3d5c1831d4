"""A task process whose step succeeded ends as soon as the KFP executor has written its outputs.

After a step's work, TensorFlow's and Beam's shutdown (thread pools, atexit
handlers, finalizers) keeps the process alive another 1.4-2.5 s on this CPU,
and kfp.local starts the next task only then: a dozen tasks one after
another lose about ten seconds of a run to it. So a task process skips that
shutdown: logging is flushed and closed, then the process exits at once with
status 0. Only in a KFP task process (the executor is `__main__`), only once
its step returned, and never after an uncaught exception: a failure keeps
Python's own exit and its status.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys

EXECUTOR = "kfp.dsl.executor_main"


def in_task_process() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == EXECUTOR


def exit_when_done() -> None:
    """In a task process, end it at its exit without the libraries' shutdown, unless something failed."""
    if not in_task_process():
        return
    failed: list[BaseException] = []
    report = sys.excepthook

    def noting(kind, error, traceback) -> None:
        failed.append(error)
        report(kind, error, traceback)

    def now() -> None:  # registered last, so the first handler to run at exit
        if failed:
            return
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    sys.excepthook = noting
    atexit.register(now)
