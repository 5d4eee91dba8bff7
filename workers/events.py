"""The STARFACE event task (sync/events.py): conflicts retry quickly, Graph outages with backoff."""

from __future__ import annotations

import logging
from typing import Any

from connectors.graph import GraphError
from sync.events import run_event
from sync.teams_session import SessionConflict
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask

log = logging.getLogger(__name__)

#: Another worker holds the user's Teams row (its Graph call may be slow or failing): wait, never give up
#: before that claim's lease has surely ended - a lost hang-up event would leave a Teams session set.
CONFLICT_RETRIES = 120
MAX_CONFLICT_WAIT_S = 2.0
GRAPH_RETRIES = 5


@celery_app.task(name=queues.TASK_STARFACE_EVENT, base=TenantTask, bind=True, ignore_result=True,
                 max_retries=CONFLICT_RETRIES)
def handle_starface_event(self: TenantTask, tenant_id: int, event: dict[str, Any],
                          received_at: str) -> dict[str, Any]:
    try:
        return run_event(self.runtime, tenant_id, event)
    except SessionConflict as exc:
        wait_s = min(MAX_CONFLICT_WAIT_S, 0.05 * (self.request.retries + 1))
        raise self.retry(exc=exc, countdown=wait_s) from None
    except GraphError as exc:
        if exc.permanent or self.request.retries >= GRAPH_RETRIES:
            log.error("tenant %s: Teams session change failed: %s", tenant_id, exc.message)
            return {"failed": type(exc).__name__}
        raise self.retry(exc=exc, countdown=getattr(exc, "retry_after", None) or 2 ** self.request.retries) \
            from None
