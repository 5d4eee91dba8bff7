"""The beat tick task: claims due tenants and enqueues their poll batches (scheduler/tick.py)."""

from __future__ import annotations

from models.base import utcnow
from scheduler.tick import run_tick
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask
from workers.task_queue import CELERY_QUEUE


@celery_app.task(name=queues.TASK_TICK, base=TenantTask, bind=True, ignore_result=True)
def tick(self: TenantTask) -> dict[str, int]:
    runtime = self.runtime
    result = run_tick(runtime.sessions, runtime.coordination, CELERY_QUEUE, utcnow())
    return {"claimed": len(result.claimed), "batches": result.batches, "blocked": len(result.skipped_blocked),
            "caught_up": len(result.caught_up)}
