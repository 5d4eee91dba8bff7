"""Per-tenant log levels: while a task works for one tenant, that tenant's level decides which records of
our own modules are kept, so one customer can be debugged without drowning the others in detail.

Our package loggers pass every record on; a filter on the root handlers keeps a record if its level is
at least the current tenant's level (set by ``tenant_log_level`` around the tenant's work), or, outside a
tenant's work, the process's level (``TEAMSCONNECT_LOG_LEVEL``). Other libraries' records are untouched.

Tenant levels are the STARFACE module's: ERROR, WARN, INFO, DEBUG, TRACE. TRACE (number 5, below DEBUG)
is for request/response summaries without secrets: the connectors write them (``connectors.trace``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from connectors.trace import TRACE

OUR_PACKAGES = ("workers", "scheduler", "sync", "tenants", "connectors", "presence", "models", "web", "cli",
                "embedded", "demo")

_NAMED = {"TRACE": TRACE, "WARN": logging.WARNING}

_tenant_level: ContextVar[int | None] = ContextVar("tenant_log_level", default=None)


def level_number(name: str) -> int:
    """``"DEBUG"`` -> 10, ``"WARN"`` -> 30, ``"TRACE"`` -> 5; unknown names fall back to INFO rather than
    failing a task."""
    key = name.strip().upper()
    if key in _NAMED:
        return _NAMED[key]
    level = logging.getLevelName(key)
    return level if isinstance(level, int) else logging.INFO


class TenantLevelFilter(logging.Filter):
    """Keeps our records at or above the current tenant's level (else the process level)."""

    def __init__(self, process_level: str) -> None:
        super().__init__()
        self.process_level = level_number(process_level)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in OUR_PACKAGES:
            return True
        tenant_level = _tenant_level.get()
        return record.levelno >= (self.process_level if tenant_level is None else tenant_level)


@contextmanager
def tenant_log_level(level_name: str) -> Iterator[None]:
    """Applies a tenant's log level to the records logged inside the block (this thread/task only)."""
    token = _tenant_level.set(level_number(level_name))
    try:
        yield
    finally:
        _tenant_level.reset(token)


def install(process_level: str, handlers: list[logging.Handler] | None = None) -> TenantLevelFilter:
    """Lets our loggers pass every record (down to TRACE) and puts the tenant filter on the given (default:
    root) handlers."""
    level_filter = TenantLevelFilter(process_level)
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(TRACE)
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, TenantLevelFilter) for f in handler.filters):
            handler.addFilter(level_filter)
    return level_filter
