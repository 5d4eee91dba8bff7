"""The base of every Celery task: the process's runtime, the tenant's log level around a tenant's work, and
an unexpected failure recorded in the tenant's health (so the admin sees it, not only the worker log)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from models.db import transaction
from sync import health
from sync.runtime import Runtime, get_runtime
from workers.logs import tenant_log_level

log = logging.getLogger(__name__)


class TenantTask(Task):  # type: ignore[misc]
    """Tasks take keyword arguments only; those with ``tenant_id`` run at that tenant's log level."""

    @property
    def runtime(self) -> Runtime:
        return get_runtime()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tenant_id = kwargs.get("tenant_id")
        if tenant_id is None:
            return super().__call__(*args, **kwargs)
        with tenant_log_level(self.runtime.log_level_of(tenant_id)):
            return super().__call__(*args, **kwargs)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Names the failure in the tenant's health; the text holds no exception message (which might quote
        an upstream answer), only what failed and where to look."""
        tenant_id = (kwargs or {}).get("tenant_id")
        if tenant_id is None:
            return
        try:
            with transaction(self.runtime.sessions) as session:
                message = f"{type(exc).__name__} in task {self.name}; the worker log has the details"
                health.record_error(session, int(tenant_id), type(exc).__name__, message, poll=False)
        except Exception:  # noqa: BLE001 - the database may be what failed; the worker log has both
            log.exception("tenant %s: could not record the failure of %s in its health", tenant_id, self.name)
