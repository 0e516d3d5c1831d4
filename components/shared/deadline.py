"""Total deadlines for remote calls.

A per-read timeout stops a server that goes silent; it never stops one that
trickles a byte every few seconds, and a nightly run must not hang on it for
days. `within` gives a call a total deadline: at the deadline the caller gets
DeadlineExceeded naming the call, whatever the server does. The call runs in
a daemon thread that is abandoned at the deadline (it ends with its
connection, or with the process): use it only for calls whose late
completion harms nothing (a request sent, an answer read into memory), and
bound a download that writes files with `Deadline.check` between reads
instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """A remote call had no complete answer by its total deadline."""


def _message(what: str, seconds: float) -> str:
    return f"{what}: no complete answer within {seconds:g} s (its total deadline); the server is stuck or trickling"


def within(seconds: float, what: str, call: Callable[[], T]) -> T:
    """`call()`'s result or exception, or DeadlineExceeded once `seconds` have passed."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = e

    worker = threading.Thread(target=run, daemon=True, name=f"deadline {what}"[:60])
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise DeadlineExceeded(_message(what, seconds))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Deadline:
    """A total deadline checked between the steps of a call the caller drives itself (a download's reads)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.ends = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise DeadlineExceeded(_message(self.what, self.seconds))
