"""The poll task: one batch of <=650 users of one tenant (sync/poll.py)."""

from __future__ import annotations

from typing import Any

from config import get_settings
from sync.poll import read_batches, run_poll, run_poll_many
from sync.ports import Batch
from sync.runtime import Runtime
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask
from workers.task_queue import CELERY_QUEUE


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
def poll_batch(self: PollTask, tenant_id: int, cycle_at: str, links: list[int] | None = None,
               batch: list[list[Any]] | None = None) -> dict[str, Any]:
    """One batch, named by its users' link ids (``batch``, their (link id, Entra id) pairs, is what a tick
    of the previous release sent). ``cycle_at`` is the tick that enqueued it (in Flower's task details,
    when polls are shown there)."""
    ((_, pairs),) = _batches([(tenant_id, links, batch)], self.runtime)
    return run_poll(self.runtime, tenant_id, pairs, CELERY_QUEUE)


@celery_app.task(name=queues.TASK_POLL_MANY, base=PollTask, bind=True, ignore_result=True)
def poll_many(self: PollTask, polls: list[list[Any]], cycle_at: str) -> dict[str, Any]:
    """Several small tenants' whole batches in one task (scheduler/tick.py packs them): [tenant id, link
    ids] each (or [tenant id, (link id, Entra id) pairs] from a tick of the previous release)."""
    named = [(int(tenant_id), None, users) if users and isinstance(users[0], list) else
             (int(tenant_id), users, None) for tenant_id, users in polls]
    return run_poll_many(self.runtime, _batches(named, self.runtime), CELERY_QUEUE)


def _batches(polls: list[tuple[int, list[int] | None, list[list[Any]] | None]],
             runtime: Runtime) -> list[tuple[int, Batch]]:
    """The (link id, Entra id) pairs of each poll: read for those named by link ids (one statement for
    all), as given for the others."""
    by_links = read_batches(runtime, [(tenant_id, [int(i) for i in links]) for tenant_id, links, _ in polls
                                      if links is not None])
    read = iter(by_links)
    return [next(read) if links is not None else
            (tenant_id, [(int(link_id), str(entra_id)) for link_id, entra_id in pairs or []])
            for tenant_id, links, pairs in polls]
