"""Fixtures shared by the whole suite: real PostgreSQL and Redis, fresh databases, an encryption box.

PostgreSQL is the server `make test` starts (scripts/services.sh); each run creates databases of its own
there. Redis is a redis-server of this run's own on a free port, started when this file is imported (before
any test module reads the URLs), so two runs on one machine never flush each other's queues. Point the
suite at other servers with TEAMSCONNECT_TEST_DATABASE_URL (an admin URL) and TEAMSCONNECT_TEST_REDIS_URL
(then also TEAMSCONNECT_TEST_BROKER_URL and TEAMSCONNECT_TEST_COORDINATION_URL; with a Redis of your own,
run the suite in one process - `make test TEST_PROCESSES=0` - as its processes would share the broker).
"""

from __future__ import annotations

import atexit
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from embedded.redis_server import RedisServer
from models import migrate
from models.crypto import SecretBox, generate_key
from models.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from embedded.stack import StackFactory

ADMIN_DATABASE_URL = os.environ.get(
    "TEAMSCONNECT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _suite_redis() -> None:
    """Starts this process's redis-server unless the environment names one; the stack and the bench read
    the broker and coordination URLs from the same variables. The pytest processes of one run (xdist)
    inherit the environment of the one that started them, so a server started by another process is not
    taken: two processes on one broker ran each other's Celery tasks against the wrong database."""
    started_by = os.environ.get("TEAMSCONNECT_TEST_REDIS_STARTED_BY")
    if os.environ.get("TEAMSCONNECT_TEST_REDIS_URL") and started_by in (None, str(os.getpid())):
        return
    server = RedisServer.started()
    atexit.register(server.stop)
    os.environ["TEAMSCONNECT_TEST_REDIS_STARTED_BY"] = str(os.getpid())
    os.environ["TEAMSCONNECT_TEST_REDIS_URL"] = server.url(15)
    os.environ["TEAMSCONNECT_TEST_BROKER_URL"] = server.url(13)
    os.environ["TEAMSCONNECT_TEST_COORDINATION_URL"] = server.url(12)


_suite_redis()
REDIS_URL = os.environ["TEAMSCONNECT_TEST_REDIS_URL"]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def create_postgres_database(prefix: str = "tc_test") -> str:
    """Creates an empty database on the test server and returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(ADMIN_DATABASE_URL), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_DATABASE_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_libpq(ADMIN_DATABASE_URL), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session."""
    try:
        url = create_postgres_database()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DATABASE_URL} (run `make test`): {exc}")
    migrate.upgrade(url)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_sessions(postgres_engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on the session's PostgreSQL database, emptied after each test."""
    yield make_session_factory(postgres_engine)
    with postgres_engine.begin() as connection:
        connection.exec_driver_sql(
            "TRUNCATE change_log, applied_state, user_link, status_rule, tenant_health, tenant "
            "RESTART IDENTITY CASCADE"
        )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database file for one test."""
    url = f"sqlite:///{tmp_path / 'teamsconnect.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def sqlite_sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def sessions(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """The same test on both databases."""
    fixture = "pg_sessions" if request.param == "postgresql" else "sqlite_sessions"
    return request.getfixturevalue(fixture)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([generate_key()])


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A real Redis connection on a test database, flushed before and after."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (run `make test`): {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def stacks(
    postgres_url: str, pg_sessions: sessionmaker[Session], encryption_key: str
) -> Iterator[StackFactory]:
    """Builds end-to-end stacks on the session's PostgreSQL database (emptied after each test by
    pg_sessions). Imported here, not at the top: the stack reads this run's Redis URLs when imported."""
    from embedded.stack import StackFactory

    yield StackFactory(postgres_url, encryption_key)
