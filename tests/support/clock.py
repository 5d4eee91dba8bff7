"""A monotonic clock a test moves by hand (for code that takes ``clock=time.monotonic``)."""

from __future__ import annotations


class FakeClock:
    """Starts at 1000.0 and moves only when the test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
