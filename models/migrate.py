"""Runs the Alembic migrations programmatically (`teamsconnect db upgrade`, tests, the demo)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    """An Alembic config bound to ``database_url`` (the URL never goes through alembic.ini)."""
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Creates or upgrades the schema to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raises if the models and the migrations differ (alembic check)."""
    command.check(alembic_config(database_url))


def downgrade(database_url: str, revision: str) -> None:
    """Downgrades the schema to ``revision`` ("base" removes every table)."""
    command.downgrade(alembic_config(database_url), revision)
