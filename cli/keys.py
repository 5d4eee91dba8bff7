"""`teamsconnect keys ...`: encryption keys for secrets at rest."""

from __future__ import annotations

import typer

from cli.errors import fail_on_bad_settings
from config import get_settings
from models.crypto import box_from_settings, generate_key
from models.db import make_engine, make_session_factory, transaction
from models.secrets import rotate_all

keys_app = typer.Typer(help="Generate keys and re-encrypt stored secrets.", no_args_is_help=True)


@keys_app.command("generate")
def generate() -> None:
    """Print a new key. Put it FIRST in TEAMSCONNECT_ENCRYPTION_KEYS, then run `keys rotate`."""
    typer.echo(generate_key())


@keys_app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret under the newest key, so older keys can be removed."""
    with fail_on_bad_settings():
        settings = get_settings()
        box = box_from_settings(settings)
        engine = make_engine(settings.effective_database_url)
        with transaction(make_session_factory(engine)) as session:
            count = rotate_all(session, box)
        engine.dispose()
    typer.echo(f"re-encrypted {count} secret(s) under the newest key")
