"""`teamsconnect operator ...` on SQLite and PostgreSQL: passwords only from stdin or a prompt, never shown,
stored as argon2 hashes; bad input names the field and the fix."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Operator
from tenants.operators import authenticate

PASSWORD = "a-long-operator-password"


def test_add_list_passwd_remove(run: Callable[..., Result], db: sessionmaker[Session], db_url: str) -> None:
    added = run("operator", "add", "alice", "--role", "admin", input=PASSWORD + "\n")
    assert added.exit_code == 0, added.stderr
    assert PASSWORD not in added.stdout
    with db() as session:
        stored = session.scalars(select(Operator)).one()
        assert stored.role == "admin" and stored.password_hash.startswith("$argon2id$")
        assert authenticate(session, "alice", PASSWORD) is not None
    listed = run("operator", "list")
    assert "alice\tadmin\tlast sign-in:" in listed.stdout and "argon2" not in listed.stdout
    assert run("operator", "passwd", "alice", input="another-long-password\n").exit_code == 0
    with db() as session:
        assert authenticate(session, "alice", PASSWORD) is None
        assert authenticate(session, "alice", "another-long-password") is not None
    assert run("operator", "remove", "alice").exit_code == 0
    assert run("operator", "remove", "alice").exit_code == 2
    if db_url.startswith("postgresql"):
        with db.begin() as session:
            session.execute(Operator.__table__.delete())


def test_bad_input_names_the_field_and_the_fix(run: Callable[..., Result], db: sessionmaker[Session]) -> None:
    short = run("operator", "add", "bob", input="short\n")
    assert short.exit_code == 2 and "password: must be at least 12 characters" in short.stderr
    role = run("operator", "add", "bob", "--role", "root", input=PASSWORD + "\n")
    assert role.exit_code == 2 and "role: must be one of admin, viewer" in role.stderr
    with db() as session:
        assert session.scalars(select(Operator)).all() == []
