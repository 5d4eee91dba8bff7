"""The embedded SQLite file and its folder are the owner's only (issue 13, item 10): they hold tenant
configuration and e-mail addresses, and were created 0644 in a 0755 folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from config.settings import load_settings
from models import migrate
from models.crypto import box_from_settings
from models.db import make_engine


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_database_is_0600_in_a_0700_folder(tmp_path: Path, usual_umask: None) -> None:
    settings = load_settings({"TEAMSCONNECT_DATA_DIR": str(tmp_path / "data")})
    engine = make_engine(settings.effective_database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()

    database = tmp_path / "data" / "teamsconnect.db"
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(database) == 0o600
    for companion in tmp_path.joinpath("data").glob("teamsconnect.db-*"):  # WAL and shared memory
        assert _mode(companion) & 0o077 == 0, companion


def test_the_key_file_created_first_also_makes_a_0700_folder(tmp_path: Path, usual_umask: None) -> None:
    settings = load_settings({"TEAMSCONNECT_DATA_DIR": str(tmp_path / "fresh")})
    box_from_settings(settings)
    migrate.upgrade(settings.effective_database_url)

    assert _mode(tmp_path / "fresh") == 0o700
    assert _mode(tmp_path / "fresh" / "encryption.key") == 0o600
    assert _mode(tmp_path / "fresh" / "teamsconnect.db") == 0o600


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path, usual_umask: None) -> None:
    database = tmp_path / "old.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()

    assert _mode(database) == 0o600


def test_an_in_memory_database_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite://", "sqlite:///:memory:"):
        engine = make_engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
    assert list(tmp_path.iterdir()) == []  # "sqlite://" once left a file named "sqlite:" behind
