"""`teamsconnect sim starface`: runs the starface simulator standalone."""

from __future__ import annotations


def starface() -> None:
    """Placeholder until the simulator lands."""
    raise SystemExit("not built yet")
