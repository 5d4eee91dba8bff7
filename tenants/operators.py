"""Console operators: the one way to add, list, remove them and set their passwords (CLI and tests).

Passwords are kept only as argon2id hashes (argon2-cffi's defaults); a password is never logged or shown.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Operator, utcnow
from models.operators import ROLES
from tenants.schema import TenantConfigError

MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
_HASHER = PasswordHasher()
#: Checked when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not-a-password-of-anyone")


def _check_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise TenantConfigError([("username", "must be 2..64 lower-case letters, digits, '.', '_', '@' or "
                                  "'-', "
                                  "e.g. alice")])
    return name


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD or not password.strip():
        raise TenantConfigError([("password", f"must be at least {MIN_PASSWORD} characters; choose a longer "
                                  "one (a pass phrase works well)")])
    return password


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise TenantConfigError([("role", f"must be one of {', '.join(ROLES)}")])
    return role


def find_operator(session: Session, username: str) -> Operator | None:
    return session.scalars(select(Operator).where(Operator.username == username.strip().lower())).first()


def add_operator(session: Session, username: str, password: str, role: str = "viewer") -> Operator:
    name = _check_username(username)
    problems: list[tuple[str, str]] = []
    for check, value in ((_check_password, password), (_check_role, role)):
        try:
            check(value)
        except TenantConfigError as exc:
            problems += exc.problems
    if problems:
        raise TenantConfigError(problems)
    if find_operator(session, name) is not None:
        raise TenantConfigError([("username", f"an operator named {name!r} exists already; choose another "
                                  "name or change the password with `teamsconnect operator passwd`")])
    operator = Operator(username=name, password_hash=_HASHER.hash(password), role=role)
    session.add(operator)
    session.flush()
    return operator


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.username)))


def remove_operator(session: Session, username: str) -> bool:
    operator = find_operator(session, username)
    if operator is None:
        return False
    session.delete(operator)
    session.flush()
    return True


def set_password(session: Session, username: str, password: str) -> Operator:
    operator = find_operator(session, username)
    if operator is None:
        raise TenantConfigError([("username", f"no operator named {username!r}; list them with "
                                  "`teamsconnect operator list`")])
    operator.password_hash = _HASHER.hash(_check_password(password))
    operator.password_changed_at = utcnow()
    session.flush()
    return operator


def authenticate(session: Session, username: str, password: str) -> Operator | None:
    """The operator if the password is right, else None (same work either way)."""
    operator = find_operator(session, username)
    try:
        _HASHER.verify(operator.password_hash if operator else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if operator is None:
        return None
    if _HASHER.check_needs_rehash(operator.password_hash):
        operator.password_hash = _HASHER.hash(password)
    operator.last_login_at = utcnow()
    session.flush()
    return operator
