"""The beat tick task: claims due tenants and enqueues their poll batches (scheduler/tick.py)."""

from __future__ import annotations

from models.base import utcnow
from scheduler.tick import run_tick
from workers import queues
from workers.app import celery_app
from workers.enqueue import enqueue_poll
from workers.runtime import get_runtime


@celery_app.task(name=queues.TASK_TICK, ignore_result=True)
def tick() -> dict[str, int]:
    runtime = get_runtime()
    result = run_tick(runtime.sessions, runtime.coordination, enqueue_poll, utcnow())
    return {"claimed": len(result.claimed), "batches": result.batches, "blocked": len(result.skipped_blocked)}
