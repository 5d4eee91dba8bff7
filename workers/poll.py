"""The poll tasks: one batch of <=650 users of one tenant, or several small tenants' (sync/poll.py)."""

from __future__ import annotations

from typing import Any

from config import get_settings
from sync.poll import run_poll, run_poll_many
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask
from workers.task_queue import CELERY_QUEUE, unpack_batch, unpack_pairs


class PollTask(TenantTask):
    """A poll sends Flower no task events unless ``TEAMSCONNECT_FLOWER_POLL_TASKS`` asks for them: polls run
    for every tenant every few seconds, so their three events each (received, started, succeeded) would
    be most of what a worker's main process publishes, and in Flower they would push the updates, calls
    and maintenance out of its list of recent tasks. The worker still sends its heartbeats and the events
    of every other task."""

    @property
    def send_events(self) -> bool:  # read by Celery's worker for each event of this task
        return get_settings().flower_poll_tasks


@celery_app.task(name=queues.TASK_POLL_BATCH, base=PollTask, bind=True, ignore_result=True)
def poll_batch(self: PollTask, cycle_at: str, packed: list[Any] | None = None, tenant_id: int | None = None,
               batch: list[list[Any]] | None = None) -> dict[str, Any]:
    """One batch as workers/task_queue.py's ``pack_batch`` writes it; ``cycle_at`` is the tick that enqueued
    it (in Flower's task details, when polls are shown there). ``tenant_id`` and ``batch`` (a pair per
    user) are what a tick before that format sent; such a task may still wait in the queue when a worker
    is upgraded."""
    if packed is not None:
        tenant_id, pairs = unpack_batch(packed)
    elif tenant_id is not None and batch is not None:
        pairs = unpack_pairs(batch)
    else:
        raise ValueError("a poll task names its batch: packed, or tenant_id and batch")
    return run_poll(self.runtime, int(tenant_id), pairs, CELERY_QUEUE)


@celery_app.task(name=queues.TASK_POLL_MANY, base=PollTask, bind=True, ignore_result=True)
def poll_many(self: PollTask, cycle_at: str, packed: list[list[Any]] | None = None,
              polls: list[list[Any]] | None = None) -> dict[str, Any]:
    """Several small tenants' whole batches in one task (scheduler/tick.py packs them), each as
    workers/task_queue.py's ``pack_batch`` writes it. ``polls`` (a pair per user) is what a tick before
    that format sent; such a task may still wait in the queue when a worker is upgraded."""
    items = [unpack_batch(entry) for entry in packed or []]
    items += [(int(tenant_id), unpack_pairs(batch)) for tenant_id, batch in polls or []]
    return run_poll_many(self.runtime, items, CELERY_QUEUE)
