"""The `TaskQueue` port (sync/ports.py) over Celery: tasks sent by name with the arguments each task takes,
ids and observed values, never secrets. No caller imports the task modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kombu.exceptions import OperationalError as BrokerError

from connectors.starface import StarfaceEvent
from sync.events import event_to_args
from sync.ports import APPLY_EXPIRES_S, ApplyItem, Batch, QueueUnavailable
from workers import queues
from workers.app import celery_app

#: Priorities within the events queue (kombu's Redis transport serves lower numbers first).
CALL_EVENT_PRIORITY = 0
OTHER_EVENT_PRIORITY = 9

#: A per-tenant maintenance task not started within this time is dropped (its periodic entry comes again).
MAINTENANCE_EXPIRES_S = 600.0


def pack_batch(tenant_id: int, batch: Batch) -> list[Any]:
    """A tenant's batch as a poll task carries it: ``[tenant_id, "link,...", "entra,..."]``.

    Why two strings and not a pair per user: the worker's main process decodes every task's body (Celery
    looks into it for the old protocol's ``args``) before its child decodes it again, so a task of 52
    small tenants paid twice for 1,300 small lists, a large tenant's batch for 650; two strings a tenant
    are two objects to decode."""
    entra_ids = ",".join(entra_id for _, entra_id in batch)
    if entra_ids.count(",") != max(len(batch) - 1, 0):  # Entra object ids are GUIDs: never a comma
        raise ValueError(f"tenant {tenant_id}: an Entra id with a comma cannot be packed")
    return [tenant_id, ",".join(str(link_id) for link_id, _ in batch), entra_ids]


def unpack_batch(packed: list[Any]) -> tuple[int, Batch]:
    """The inverse of ``pack_batch``; raises ValueError on a malformed entry (a task sent by other code)."""
    tenant_id, link_ids, entra_ids = packed
    links = [int(link_id) for link_id in link_ids.split(",")] if link_ids else []
    entras = entra_ids.split(",") if links else []  # as many as link ids, even an empty one
    if len(links) != len(entras):
        raise ValueError(f"packed poll of tenant {tenant_id}: "
                         f"{len(links)} link ids but {len(entras)} Entra ids")
    return int(tenant_id), list(zip(links, entras, strict=True))


def unpack_pairs(pairs: list[list[Any]]) -> Batch:
    """A batch in the format before ``pack_batch`` (a [link id, Entra id] pair per user), which a queue may
    still hold while its workers are upgraded."""
    return [(int(link_id), str(entra_id)) for link_id, entra_id in pairs]


class CeleryTaskQueue:
    """Sends each kind of work to its own queue, with an expiry."""

    def poll(self, tenant_id: int, batch: Batch, cycle_at: datetime, interval_s: float) -> None:
        celery_app.send_task(
            queues.TASK_POLL_BATCH,
            kwargs={"packed": pack_batch(tenant_id, batch), "cycle_at": cycle_at.isoformat()},
            queue=queues.QUEUE_POLL,
            expires=max(2.0, interval_s * 2),
        )

    def poll_many(self, polls: list[tuple[int, Batch]], cycle_at: datetime, interval_s: float) -> None:
        celery_app.send_task(
            queues.TASK_POLL_MANY,
            kwargs={"packed": [pack_batch(tenant_id, batch) for tenant_id, batch in polls],
                    "cycle_at": cycle_at.isoformat()},
            queue=queues.QUEUE_POLL,
            expires=max(2.0, interval_s * 2),
        )

    def apply(self, tenant_id: int, user_link_id: int, plan: dict[str, Any], expected_version: int | None,
              expires_s: float = APPLY_EXPIRES_S, countdown_s: float = 0.0) -> None:
        celery_app.send_task(
            queues.TASK_APPLY_STARFACE,
            kwargs={"tenant_id": tenant_id, "user_link_id": user_link_id, "plan": plan,
                    "expected_version": expected_version},
            queue=queues.QUEUE_APPLY,
            expires=expires_s + countdown_s,
            countdown=countdown_s or None,
        )

    def apply_batch(self, tenant_id: int, items: list[ApplyItem], expires_s: float = APPLY_EXPIRES_S) -> None:
        celery_app.send_task(
            queues.TASK_APPLY_STARFACE_BATCH,
            kwargs={"tenant_id": tenant_id, "items": [list(item) for item in items]},
            queue=queues.QUEUE_APPLY,
            expires=expires_s,
        )

    def starface_event(self, tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
        """Raises QueueUnavailable when the broker cannot take it (the webhook then answers 503)."""
        try:
            celery_app.send_task(
                queues.TASK_STARFACE_EVENT,
                kwargs={"tenant_id": tenant_id, "event": event_to_args(event),
                        "received_at": received_at.isoformat()},
                queue=queues.QUEUE_EVENTS,
                expires=600,
                # Calls first: the DND and chat-status events that our own STARFACE writes raise (hundreds
                # during a burst of updates) must not hold up a ringing phone (Redis: 0 is served first).
                priority=CALL_EVENT_PRIORITY if event.type == "telephony" else OTHER_EVENT_PRIORITY,
                retry_policy=_WEBHOOK_RETRY,
            )
        except (BrokerError, OSError) as exc:
            raise QueueUnavailable(type(exc).__name__) from exc

    def directory_sync(self, tenant_id: int) -> None:
        self._maintenance(queues.TASK_SYNC_TENANT_DIRECTORY, tenant_id)

    def drift_repair(self, tenant_id: int) -> None:
        self._maintenance(queues.TASK_REPAIR_TENANT, tenant_id)

    @staticmethod
    def _maintenance(task_name: str, tenant_id: int) -> None:
        """Raises QueueUnavailable when the broker cannot take it (the periodic entry comes again)."""
        try:
            celery_app.send_task(task_name, kwargs={"tenant_id": tenant_id}, queue=queues.QUEUE_MAINTENANCE,
                                 expires=MAINTENANCE_EXPIRES_S, retry_policy=_QUICK_RETRY)
        except (BrokerError, OSError) as exc:
            raise QueueUnavailable(type(exc).__name__) from exc


#: The bridge waits for the webhook's answer and retries a 503 itself: one immediate retry (a pooled
#: connection the broker closed), then 503 - never kombu's default of three retries per timeout.
_WEBHOOK_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}

#: A maintenance task is requested by a person or a periodic entry: fail fast rather than hang.
_QUICK_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


#: The queue every production entry point uses.
CELERY_QUEUE = CeleryTaskQueue()
