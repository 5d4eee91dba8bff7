"""`teamsconnect db ...`: schema management."""

from __future__ import annotations

import typer

from cli.errors import fail_on_bad_settings
from config import get_settings
from models import migrate

db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or upgrade the schema (same as `alembic upgrade head`)."""
    with fail_on_bad_settings():
        url = get_settings().effective_database_url
        migrate.upgrade(url, revision)
    typer.echo(f"database is at revision {revision}")
