"""`teamsconnect demo`: the whole product on this machine against simulators (demo/hour.py). Exit code 0
only if every scripted expectation held, 1 otherwise; 2 for bad options."""

from __future__ import annotations

from pathlib import Path

import typer

from demo.hour import SHORT_HOUR_S, SHORT_USERS, run_demo
from demo.script import MIN_USERS


def demo(
    users: int = typer.Option(200, "--users", min=MIN_USERS, help="Users in the demo tenant."),
    seed: int = typer.Option(7, "--seed", help="Seed of the scripted hour (the same seed, the same hour)."),
    hour_seconds: float = typer.Option(30.0, "--hour-seconds", min=5.0,
                                       help="Real seconds the scripted office hour is compressed into."),
    short: bool = typer.Option(
        False, "--short", help=f"A quick run for CI: {SHORT_USERS} users, a {SHORT_HOUR_S:.0f}-second hour."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", file_okay=False, help="Keep the SQLite file and key here (default: a temp dir)."),
) -> None:
    """Run the whole product on this machine against simulators of Teams and STARFACE, and check it."""
    if short:
        users, hour_seconds = SHORT_USERS, SHORT_HOUR_S
    raise typer.Exit(0 if run_demo(users, seed, hour_seconds, data_dir) else 1)
