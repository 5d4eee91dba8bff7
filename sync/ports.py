"""The port through which use cases hand work on: a queue of tasks, implemented with Celery in
workers/task_queue.py (production, tests) and by whatever a test or benchmark passes in its place.

Task arguments are ids and observed values, never secrets (Flower shows arguments).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from connectors.starface import StarfaceEvent

#: (user link id, Entra object id) pairs of one poll batch.
Batch = list[tuple[int, str]]
#: One user's STARFACE update: (user link id, plan as JSON, applied-state version it was decided from).
ApplyItem = tuple[int, dict[str, Any], int | None]

#: The most users in one batched update task: one poll's changes are split into tasks of this size, so a
#: task stays short (its users' requests run under the PBX's limits) and several workers can share a burst.
APPLY_BATCH_MAX = 50

#: An update not started within this time is dropped (a newer poll decides again); the user's "update
#: queued" mark lasts as long, so the users of a task lost with its worker wait no longer than this.
APPLY_EXPIRES_S = 30.0
#: How long one task may run (the Celery limits); a claim on an applied state outlives the hard limit.
TASK_SOFT_TIME_LIMIT_S = 45
TASK_TIME_LIMIT_S = 60


class QueueUnavailable(Exception):
    """The queue could not take the work (broker down); the message names the cause, never a secret."""


class TaskQueue(Protocol):
    """Where use cases put the work they hand on to other workers."""

    def poll(self, tenant_id: int, batch: Batch, cycle_at: datetime, interval_s: float) -> None:
        """One poll task for one batch; it expires after two intervals (a newer cycle supersedes it)."""

    def poll_many(self, polls: list[tuple[int, Batch]], cycle_at: datetime, interval_s: float) -> None:
        """One task for the whole batches of several small tenants (at most GRAPH_BATCH_SIZE users in
        all), polled one after another; it expires like a poll."""

    def apply(self, tenant_id: int, user_link_id: int, plan: dict[str, Any], expected_version: int | None,
              expires_s: float = APPLY_EXPIRES_S, countdown_s: float = 0.0) -> None:
        """One STARFACE update for one user: the decided plan and the applied version it was made from
        (a retry of one user of a batch starts after ``countdown_s``)."""

    def apply_batch(self, tenant_id: int, items: list[ApplyItem], expires_s: float = APPLY_EXPIRES_S) -> None:
        """The STARFACE updates one poll decided for up to APPLY_BATCH_MAX users of one tenant."""

    def starface_event(self, tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
        """A verified bridge event for the events workers."""

    def directory_sync(self, tenant_id: int) -> None:
        """A directory sync of one tenant."""

    def drift_repair(self, tenant_id: int) -> None:
        """A drift repair (or, for a disabled tenant, the release of our outputs) of one tenant."""


class CollectingQueue:
    """A `TaskQueue` that keeps the work instead of sending it: benchmarks and tests that drive one step
    at a time (a tick, a poll) read what it would have handed on."""

    def __init__(self) -> None:
        self.polls: list[tuple[int, Batch, datetime, float]] = []
        self.poll_tasks: list[list[tuple[int, Batch]]] = []
        self.applies: list[tuple[int, int, dict[str, Any], int | None]] = []
        self.apply_batches: list[tuple[int, list[ApplyItem]]] = []
        self.events: list[tuple[int, StarfaceEvent, datetime]] = []
        self.maintenance: list[tuple[str, int]] = []

    def poll(self, tenant_id: int, batch: Batch, cycle_at: datetime, interval_s: float) -> None:
        self.polls.append((tenant_id, batch, cycle_at, interval_s))

    def poll_many(self, polls: list[tuple[int, Batch]], cycle_at: datetime, interval_s: float) -> None:
        """Kept as one task in ``poll_tasks`` and, tenant by tenant, in ``polls``."""
        self.poll_tasks.append(list(polls))
        self.polls.extend((tenant_id, batch, cycle_at, interval_s) for tenant_id, batch in polls)

    def apply(self, tenant_id: int, user_link_id: int, plan: dict[str, Any], expected_version: int | None,
              expires_s: float = APPLY_EXPIRES_S, countdown_s: float = 0.0) -> None:
        self.applies.append((tenant_id, user_link_id, plan, expected_version))

    def apply_batch(self, tenant_id: int, items: list[ApplyItem], expires_s: float = APPLY_EXPIRES_S) -> None:
        """Kept as one batch and, user by user, in ``applies`` (what the batch would update)."""
        self.apply_batches.append((tenant_id, list(items)))
        self.applies.extend((tenant_id, link_id, plan, version) for link_id, plan, version in items)

    def starface_event(self, tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
        self.events.append((tenant_id, event, received_at))

    def directory_sync(self, tenant_id: int) -> None:
        self.maintenance.append(("directory_sync", tenant_id))

    def drift_repair(self, tenant_id: int) -> None:
        self.maintenance.append(("drift_repair", tenant_id))
