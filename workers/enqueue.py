"""Enqueueing by task name with the arguments each task takes: ids and observed values, never secrets.

Callers (the scheduler tick, the web app's webhook receiver, the poll task) use these functions, so the
argument shapes live in one place and no caller imports the task modules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.starface import StarfaceEvent
from workers import queues
from workers.app import celery_app


def event_to_args(event: StarfaceEvent) -> dict[str, Any]:
    """A verified webhook event as JSON-safe task arguments (the event carries no secret)."""
    return {
        "event_id": event.event_id,
        "type": event.type,
        "account": event.account,
        "login": event.login,
        "occurred_at": event.occurred_at.isoformat(),
        "origin": event.origin,
        "telephony_state": None if event.telephony_state is None else str(event.telephony_state),
        "dnd": event.dnd,
        "chat_presence": None if event.chat_presence is None else str(event.chat_presence),
        "chat_presence_message": event.chat_presence_message,
    }


def enqueue_starface_event(tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
    """Hands a verified bridge event to the events queue (the web app answers 202 right after)."""
    celery_app.send_task(
        queues.TASK_STARFACE_EVENT,
        kwargs={"tenant_id": tenant_id, "event": event_to_args(event),
                "received_at": received_at.isoformat()},
        queue=queues.QUEUE_EVENTS,
        expires=600,
    )


def enqueue_poll(tenant_id: int, batch: list[tuple[int, str]], cycle_at: datetime, interval_s: float) -> None:
    """One poll task for one batch; it expires after an interval (a newer cycle supersedes it)."""
    celery_app.send_task(
        queues.TASK_POLL_BATCH,
        kwargs={"tenant_id": tenant_id, "batch": [list(pair) for pair in batch],
                "cycle_at": cycle_at.isoformat()},
        queue=queues.QUEUE_POLL,
        expires=max(2.0, interval_s * 2),
    )


#: An update not started within this time is dropped (a newer poll decides again).
APPLY_EXPIRES_S = 60.0


def enqueue_apply(tenant_id: int, user_link_id: int, plan: dict[str, Any], expected_version: int | None,
                  expires_s: float = APPLY_EXPIRES_S) -> None:
    """One STARFACE update for one user: the decided plan and the applied version it was made from."""
    celery_app.send_task(
        queues.TASK_APPLY_STARFACE,
        kwargs={"tenant_id": tenant_id, "user_link_id": user_link_id, "plan": plan,
                "expected_version": expected_version},
        queue=queues.QUEUE_APPLY,
        expires=expires_s,
    )


def enqueue_maintenance(task_name: str, tenant_id: int, expires_s: float = 600.0) -> None:
    """A per-tenant maintenance task (directory sync, drift repair), fanned out from its periodic entry."""
    celery_app.send_task(task_name, kwargs={"tenant_id": tenant_id}, queue=queues.QUEUE_MAINTENANCE,
                         expires=expires_s)
