"""Each tenant's own recent log lines, kept where the console can read them.

A logging handler on the workers' root logger picks our records that name a tenant ("tenant 7: ...", the
form every tenant-related line of ours has) and keeps the newest `KEEP_LINES` lines per tenant: in a Redis
list per tenant when `TEAMSCONNECT_REDIS_URL` is set (shared by every worker and the web app), else in this
process (embedded mode, where web app and workers share one process). The tenant's log level
(workers/logs.py) decides which records get here, as for the worker log itself.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from datetime import UTC, datetime

import redis

from config import Settings
from workers.logs import OUR_PACKAGES

KEEP_LINES = 1000
_TENANT = re.compile(r"\btenant (\d+)\b")
_local: dict[int, deque[str]] = {}
_local_lock = threading.Lock()


def _key(tenant_id: int) -> str:
    return f"tc:tenantlog:{tenant_id}"


class TenantLogStore:
    """Where tenants' lines are kept: a Redis list each (newest first), or this process's memory."""

    def __init__(self, redis_url: str | None) -> None:
        self.client = redis.Redis.from_url(redis_url) if redis_url else None

    def append(self, tenant_id: int, line: str) -> None:
        if self.client is None:
            with _local_lock:
                _local.setdefault(tenant_id, deque(maxlen=KEEP_LINES)).appendleft(line)
            return
        with self.client.pipeline() as pipe:
            pipe.lpush(_key(tenant_id), line)
            pipe.ltrim(_key(tenant_id), 0, KEEP_LINES - 1)
            pipe.execute()

    def lines(self, tenant_id: int, limit: int = KEEP_LINES) -> list[str]:
        """The tenant's lines, newest first."""
        if self.client is None:
            with _local_lock:
                return list(_local.get(tenant_id, ()))[:limit]
        return [raw.decode("utf-8", "replace") for raw in self.client.lrange(_key(tenant_id), 0, limit - 1)]

    def clear(self, tenant_id: int) -> None:
        if self.client is None:
            with _local_lock:
                _local.pop(tenant_id, None)
        else:
            self.client.delete(_key(tenant_id))


def store_for(settings: Settings) -> TenantLogStore:
    return TenantLogStore(settings.redis_url)


class TenantLogHandler(logging.Handler):
    """Copies our records that name a tenant into that tenant's lines; never fails the caller."""

    def __init__(self, store: TenantLogStore) -> None:
        super().__init__(logging.DEBUG)
        self.store = store

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in OUR_PACKAGES:
            return
        try:
            message = record.getMessage()
            found = _TENANT.search(message)
            if found is None:
                return
            when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            self.store.append(int(found.group(1)), f"{when} {record.levelname} {record.name}: {message}")
        except Exception:  # noqa: BLE001 - logging must never break a task
            self.handleError(record)


def install(settings: Settings) -> TenantLogHandler:
    """Puts the handler on the root logger (once); call before workers.logs.install, whose per-tenant
    level filter then applies to it too."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, TenantLogHandler):
            return handler
    handler = TenantLogHandler(store_for(settings))
    root.addHandler(handler)
    return handler
