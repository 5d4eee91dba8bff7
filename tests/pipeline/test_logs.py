"""Per-tenant log levels: one tenant at DEBUG shows its details, the others stay at the process level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from models.crypto import SecretBox
from sync.coordination import LocalCoordination
from sync.runtime import Runtime
from tests.support.factories import make_tenant
from workers import logs


@pytest.fixture(autouse=True)
def _our_loggers_as_before() -> Iterator[None]:
    """logs.install sets our package loggers' levels: other tests in this process see them as they were."""
    saved = {package: logging.getLogger(package).level for package in logs.OUR_PACKAGES}
    yield
    for package, level in saved.items():
        logging.getLogger(package).setLevel(level)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_it_keeps_debug_records_only_for_the_tenant_that_asked_for_them() -> None:
    handler = Collect()
    logs.install("INFO", handlers=[handler])
    ours, theirs = logging.getLogger("connectors.graph.test"), logging.getLogger("httpx")
    ours.addHandler(handler)
    theirs.addHandler(handler)
    theirs.setLevel(logging.DEBUG)
    try:
        with logs.tenant_log_level("DEBUG"):
            ours.debug("debug for the debugged tenant")
        with logs.tenant_log_level("WARNING"):
            ours.info("info for a quiet tenant")
            ours.warning("warning for a quiet tenant")
        ours.debug("debug outside any tenant")
        ours.info("info outside any tenant")
        theirs.debug("a library's own record")
    finally:
        ours.removeHandler(handler)
        theirs.removeHandler(handler)
        theirs.setLevel(logging.NOTSET)
    assert handler.messages == [
        "debug for the debugged tenant", "warning for a quiet tenant", "info outside any tenant",
        "a library's own record",
    ]


def test_it_reads_every_tenants_level_in_one_query(
    pg_sessions: sessionmaker[Session], postgres_engine: Engine, postgres_url: str, box: SecretBox
) -> None:
    with pg_sessions.begin() as session:
        loud = make_tenant(session, box, name="loud", log_level="DEBUG").id
        quiet = make_tenant(session, box, name="quiet").id
    runtime = Runtime(settings=Settings(_env_file=None, database_url=postgres_url, log_level="WARNING"),
                      engine=postgres_engine, sessions=pg_sessions, box=box, coordination=LocalCoordination())
    assert (runtime.log_level_of(loud), runtime.log_level_of(quiet), runtime.log_level_of(999)) == (
        "DEBUG", "INFO", "WARNING")


def test_it_keeps_trace_records_only_for_a_tenant_at_trace() -> None:
    """The module's TRACE (5) is below DEBUG; WARN is WARNING."""
    handler = Collect()
    logs.install("INFO", handlers=[handler])
    ours = logging.getLogger("sync.test_trace")
    ours.addHandler(handler)
    try:
        with logs.tenant_log_level("TRACE"):
            ours.log(logs.TRACE, "GET /rest/users -> 200 (3 users)")
        with logs.tenant_log_level("DEBUG"):
            ours.log(logs.TRACE, "dropped at DEBUG")
        with logs.tenant_log_level("WARN"):
            ours.info("dropped at WARN")
            ours.warning("kept at WARN")
    finally:
        ours.removeHandler(handler)
    assert handler.messages == ["GET /rest/users -> 200 (3 users)", "kept at WARN"]
    assert logging.getLevelName(logs.TRACE) == "TRACE"


def test_our_loggers_make_detail_records_only_while_a_tenant_asks_for_them() -> None:
    """Below the process level a debug call makes no record at all (one level check), until a tenant's
    task runs at DEBUG; DETAIL_KEEP_S after the last such task the loggers are back at the process level."""
    logs.install("INFO", handlers=[])
    ours = logging.getLogger("connectors.graph.test_floor")
    now = [1000.0]
    assert not ours.isEnabledFor(logging.DEBUG)
    with logs.tenant_log_level("INFO", clock=lambda: now[0]):
        assert not ours.isEnabledFor(logging.DEBUG)
    with logs.tenant_log_level("DEBUG", clock=lambda: now[0]):
        assert ours.isEnabledFor(logging.DEBUG) and not ours.isEnabledFor(logs.TRACE)
    now[0] += logs.DETAIL_KEEP_S - 1
    with logs.tenant_log_level("INFO", clock=lambda: now[0]):  # another tenant, while DEBUG is recent
        assert ours.isEnabledFor(logging.DEBUG)
    now[0] += 2
    with logs.tenant_log_level("WARN", clock=lambda: now[0]):
        assert not ours.isEnabledFor(logging.DEBUG) and ours.isEnabledFor(logging.INFO)
    logs.install("WARNING", handlers=[])
    assert not ours.isEnabledFor(logging.INFO)
