"""Maintenance tasks: each periodic entry fans out one task per tenant (Sentry's check_auth shape); the work
itself is in sync/maintenance.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connectors.graph import GraphError
from connectors.starface import StarfaceError
from sync.maintenance import (
    enabled_tenant_ids,
    run_directory_sync,
    run_drift_repair,
    run_keep_alive,
    run_secret_expiry,
)
from sync.runtime import Runtime
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask
from workers.logs import tenant_log_level
from workers.task_queue import CELERY_QUEUE

log = logging.getLogger(__name__)


@celery_app.task(name=queues.TASK_KEEP_ALIVE, base=TenantTask, bind=True, ignore_result=True)
def keep_alive_all(self: TenantTask) -> dict[str, Any]:
    runtime = self.runtime
    results = {}
    for tenant_id in enabled_tenant_ids(runtime):
        with tenant_log_level(runtime.log_level_of(tenant_id)):
            results[str(tenant_id)] = run_keep_alive(runtime, tenant_id)
    return results


def fan_out(runtime: Runtime, enqueue: Callable[[int], None], include_disabled: bool = False) -> int:
    """One per-tenant task for every enabled (or every) tenant; returns how many were queued."""
    tenant_ids = enabled_tenant_ids(runtime, include_disabled)
    for tenant_id in tenant_ids:
        enqueue(tenant_id)
    return len(tenant_ids)


@celery_app.task(name=queues.TASK_DIRECTORY_SYNC, base=TenantTask, bind=True, ignore_result=True)
def directory_sync_all(self: TenantTask) -> int:
    return fan_out(self.runtime, CELERY_QUEUE.directory_sync)


@celery_app.task(name=queues.TASK_SYNC_TENANT_DIRECTORY, base=TenantTask, bind=True, ignore_result=True)
def directory_sync_tenant(self: TenantTask, tenant_id: int) -> dict[str, Any]:
    return run_directory_sync(self.runtime, tenant_id, CELERY_QUEUE)


@celery_app.task(name=queues.TASK_DRIFT_REPAIR, base=TenantTask, bind=True, ignore_result=True)
def drift_repair_all(self: TenantTask) -> int:
    # disabled tenants too: their repair releases what we still hold
    return fan_out(self.runtime, CELERY_QUEUE.drift_repair, include_disabled=True)


@celery_app.task(name=queues.TASK_REPAIR_TENANT, base=TenantTask, bind=True, ignore_result=True)
def drift_repair_tenant(self: TenantTask, tenant_id: int) -> dict[str, int]:
    try:
        return run_drift_repair(self.runtime, tenant_id, CELERY_QUEUE)
    except (GraphError, StarfaceError) as exc:
        log.warning("tenant %s: drift repair failed: %s", tenant_id, exc)
        return {"failed": 1}


@celery_app.task(name=queues.TASK_SECRET_EXPIRY, base=TenantTask, bind=True, ignore_result=True)
def secret_expiry(self: TenantTask) -> dict[str, int]:
    return run_secret_expiry(self.runtime)
