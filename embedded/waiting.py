"""Waiting for a condition with a timeout: how tests, the benchmark and the demo synchronise with workers
and simulators (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.05,
               between: Callable[[], None] | None = None, what: str = "condition") -> T:
    """Polls ``condition`` until it returns something truthy; raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        if between is not None:
            between()
        time.sleep(interval)
