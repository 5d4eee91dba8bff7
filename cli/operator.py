"""`teamsconnect operator add|list|remove|passwd`: the people who sign in to the admin console.

A password is never a command-line flag (it would stay in the shell history and the process list): it is
asked for with a hidden prompt (twice) on a terminal, or read as one line from standard input otherwise
(`echo "$PW" | teamsconnect operator add alice --role admin`).
"""

from __future__ import annotations

import sys

import typer

from cli.tenant import _echo_error, _session
from tenants.operators import add_operator, list_operators, remove_operator, set_password

operator_app = typer.Typer(help="Add, list and remove console operators; set their passwords.",
                           no_args_is_help=True)


def _password() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


@operator_app.command("add")
def add(username: str,
        role: str = typer.Option("viewer", help="admin (may change) or viewer (may look)")) -> None:
    """Adds an operator; the password comes from a hidden prompt or standard input."""
    password = _password()
    with _session() as (session, _box):
        operator = add_operator(session, username, password, role)
        typer.echo(f"operator {operator.username} added ({operator.role})")


@operator_app.command("list")
def list_() -> None:
    """Lists operators with role and last sign-in (never a password or hash)."""
    with _session() as (session, _box):
        for operator in list_operators(session):
            last = operator.last_login_at.isoformat(timespec="seconds") if operator.last_login_at else "never"
            typer.echo(f"{operator.username}\t{operator.role}\tlast sign-in: {last}")


@operator_app.command("remove")
def remove(username: str) -> None:
    """Removes an operator; their console sessions end at once."""
    with _session() as (session, _box):
        if not remove_operator(session, username):
            _echo_error(f"no operator named {username!r}; `teamsconnect operator list` shows them")
            raise typer.Exit(2)
        typer.echo(f"operator {username} removed")


@operator_app.command("passwd")
def passwd(username: str) -> None:
    """Sets a new password (hidden prompt or standard input); the operator's sessions end."""
    password = _password()
    with _session() as (session, _box):
        set_password(session, username, password)
        typer.echo(f"password of {username} changed")
