"""Fixtures for end-to-end pipeline tests (see stack.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from embedded.stack import StackFactory
from models.crypto import generate_key


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def stacks(
    postgres_url: str, pg_sessions: sessionmaker[Session], encryption_key: str
) -> Iterator[StackFactory]:
    """Builds stacks on the session's PostgreSQL database (emptied after each test by pg_sessions)."""
    yield StackFactory(postgres_url, encryption_key)
