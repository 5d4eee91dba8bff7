"""Turns start-up errors into one clear line on stderr and exit code 2, instead of a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from config import SettingsError
from models.crypto import SecretBoxError


@contextmanager
def fail_on_bad_settings() -> Iterator[None]:
    """Reports bad settings and key problems plainly (they name the variable to fix)."""
    try:
        yield
    except (SettingsError, SecretBoxError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
