"""Per-tenant log levels: while a task works for one tenant, that tenant's level decides which records of
our own modules are kept, so one customer can be debugged without drowning the others in detail.

A filter on the root handlers keeps a record of ours if its level is at least the current tenant's level
(set by ``tenant_log_level`` around the tenant's work), or, outside a tenant's work, the process's level
(``TEAMSCONNECT_LOG_LEVEL``). Other libraries' records are untouched. Our package loggers let through only
what some tenant may keep: the process level, or a lower level while a tenant's task asked for it in the
last ``DETAIL_KEEP_S``. A debug or trace call nobody wants then costs one level check, not a record the
filter drops (two per Graph or STARFACE request: 3 % of a worker's CPU polling small tenants).

Tenant levels are the STARFACE module's: ERROR, WARN, INFO, DEBUG, TRACE. TRACE (number 5, below DEBUG)
is for request/response summaries without secrets: the connectors write them (``connectors.trace``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from connectors.trace import TRACE

OUR_PACKAGES = ("workers", "scheduler", "sync", "tenants", "connectors", "presence", "models", "web", "cli",
                "embedded", "demo")

_NAMED = {"TRACE": TRACE, "WARN": logging.WARNING}

_tenant_level: ContextVar[int | None] = ContextVar("tenant_log_level", default=None)

#: How long our loggers keep making records below the process level after the last task of a tenant that
#: asked for them (longer than any task runs: sync.ports.TASK_TIME_LIMIT_S).
DETAIL_KEEP_S = 300.0


class _LoggerFloor:
    """The level our package loggers are at: the process level, or the lowest a tenant asked for lately."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.process_level = logging.INFO
        self._asked: dict[int, float] = {}  # level below the process level -> when a tenant last asked

    def reset(self, process_level: int) -> None:
        with self._lock:
            self.process_level = process_level
            self._asked.clear()
            self._apply(process_level)

    def ask(self, level: int, now: float) -> None:
        """A tenant's task runs at ``level`` now: lower the floor to it, or raise it back where nobody has
        asked for the lower level within DETAIL_KEEP_S."""
        with self._lock:
            if level < self.process_level:
                self._asked[level] = now
            elif not self._asked:
                return  # the common case: every tenant at or above the process level
            for asked, at in list(self._asked.items()):
                if now - at > DETAIL_KEEP_S:
                    del self._asked[asked]
            self._apply(min([self.process_level, *self._asked]))

    @staticmethod
    def _apply(level: int) -> None:
        if logging.getLogger(OUR_PACKAGES[0]).level != level:  # setLevel clears every logger's cache
            for package in OUR_PACKAGES:
                logging.getLogger(package).setLevel(level)


_floor = _LoggerFloor()


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
def tenant_log_level(level_name: str, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Applies a tenant's log level to the records logged inside the block (this thread/task only)."""
    level = level_number(level_name)
    _floor.ask(level, clock())
    token = _tenant_level.set(level)
    try:
        yield
    finally:
        _tenant_level.reset(token)


def install(process_level: str, handlers: list[logging.Handler] | None = None) -> TenantLevelFilter:
    """Sets our loggers to the process level (lower while a tenant asks for more) and puts the tenant
    filter on the given (default: root) handlers."""
    level_filter = TenantLevelFilter(process_level)
    _floor.reset(level_filter.process_level)
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, TenantLevelFilter) for f in handler.filters):
            handler.addFilter(level_filter)
    return level_filter
