"""Runs the Alembic migrations programmatically (`teamsconnect db upgrade`, tests, the demo)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

#: The migrations package: installed with the distribution, so `db upgrade` works outside a checkout too.
SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config bound to ``database_url``; alembic.ini is only for the `alembic` command."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
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
