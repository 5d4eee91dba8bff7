"""Per-tenant log levels: one tenant at DEBUG shows its details, the others stay at the process level."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from models.crypto import SecretBox
from sync.coordination import LocalCoordination
from sync.runtime import Runtime
from tests.support.factories import make_tenant
from workers import logs


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
