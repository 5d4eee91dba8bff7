"""`teamsconnect sim microsoft`: runs the microsoft simulator standalone."""

from __future__ import annotations


def microsoft() -> None:
    """Placeholder until the simulator lands."""
    raise SystemExit("not built yet")
