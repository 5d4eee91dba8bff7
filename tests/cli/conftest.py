"""Fixtures for the command line: a configured database (SQLite or PostgreSQL), a key, a CLI runner, and
a valid tenant definition. Settings are read from the environment, so each test sets it and clears the
settings cache before and after."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from config.settings import get_settings
from models.crypto import SecretBox, generate_key
from models.db import make_engine, make_session_factory

CLIENT_SECRET = "cli~client-secret-value-never-shown"
STARFACE_PASSWORD = "cli-pbx-password-never-shown"
BRIDGE_SECRET = "cli-bridge-secret-never-shown"
SECRETS = (CLIENT_SECRET, STARFACE_PASSWORD, BRIDGE_SECRET)

TENANT: dict[str, Any] = {
    "name": "contoso",
    "description": "Contoso head office",
    "microsoft": {
        "directory_id": "11111111-1111-1111-1111-111111111111",
        "client_id": "22222222-2222-2222-2222-222222222222",
        "client_secret": CLIENT_SECRET,
        "secret_expires_at": "2099-01-01",
    },
    "starface": {
        "base_url": "https://pbx.contoso.example",
        "login_id": "0001",
        "password": STARFACE_PASSWORD,
        "bridge": {"instance": "TeamsConnectBridge", "secret": BRIDGE_SECRET},
    },
    "options": {"set_telephony": True},
    "selection": {"mode": "group_plus_listed", "starface_group_id": 7, "login_ids": ["1017"]},
    "rules": {"InACall": {"dnd": "set", "chat_text": "Im Teams-Gespräch"}},
}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "a secret reached the output"


@pytest.fixture
def tenant_data() -> dict[str, Any]:
    return copy.deepcopy(TENANT)


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[Any], Path]:
    def write(data: Any, name: str = "tenant.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write


@pytest.fixture
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encryption_key: str) -> Iterator[None]:
    """An environment without stray TEAMSCONNECT_ settings; wide output so tables do not wrap."""
    for name in ("MODE", "DATABASE_URL", "BROKER_URL", "REDIS_URL", "CA_BUNDLE", "LOG_LEVEL"):
        monkeypatch.delenv(f"TEAMSCONNECT_{name}", raising=False)
    monkeypatch.setenv("TEAMSCONNECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEAMSCONNECT_ENCRYPTION_KEYS", encryption_key)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, cli_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The configured database of the CLI: a migrated SQLite file, or the session's PostgreSQL database
    (emptied after the test by `pg_sessions`)."""
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("postgres_url")
        request.getfixturevalue("pg_sessions")
    monkeypatch.setenv("TEAMSCONNECT_DATABASE_URL", url)
    get_settings.cache_clear()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the CLI's database, to look at what a command stored."""
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def cli_box(encryption_key: str) -> SecretBox:
    return SecretBox([encryption_key])


@pytest.fixture
def run() -> Callable[..., Result]:
    """Runs `teamsconnect ARGS...` in-process; stdout and stderr are kept apart."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        get_settings.cache_clear()
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke
