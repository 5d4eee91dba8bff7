"""The poll task: one batch of <=650 users of one tenant (sync/poll.py)."""

from __future__ import annotations

from typing import Any

from sync.poll import run_poll, run_poll_many
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask
from workers.task_queue import CELERY_QUEUE


@celery_app.task(name=queues.TASK_POLL_BATCH, base=TenantTask, bind=True, ignore_result=True)
def poll_batch(self: TenantTask, tenant_id: int, batch: list[list[Any]], cycle_at: str) -> dict[str, Any]:
    """``cycle_at`` is the tick that enqueued it (visible in Flower)."""
    pairs = [(int(link_id), str(entra_id)) for link_id, entra_id in batch]
    return run_poll(self.runtime, tenant_id, pairs, CELERY_QUEUE)


@celery_app.task(name=queues.TASK_POLL_MANY, base=TenantTask, bind=True, ignore_result=True)
def poll_many(self: TenantTask, polls: list[list[Any]], cycle_at: str) -> dict[str, Any]:
    """Several small tenants' whole batches in one task (scheduler/tick.py packs them)."""
    items = [(int(tenant_id), [(int(link_id), str(entra_id)) for link_id, entra_id in batch])
             for tenant_id, batch in polls]
    return run_poll_many(self.runtime, items, CELERY_QUEUE)
