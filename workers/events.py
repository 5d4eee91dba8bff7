"""The STARFACE event task (sync/events.py): conflicts retry quickly, Graph outages with backoff."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from connectors.graph import GraphError
from models.base import utcnow
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
#: Graph throttling or failing (429, 5xx, time-outs): the event tries again, as Retry-After asks or with
#: backoff, until this long after the webhook came in. A count of tries ran out during a 10 s throttling
#: storm (chaos suite: five users on a call stayed ringable in Teams until keep-alive, every 60 s, set
#: their session); later than this, keep-alive and drift repair cover the user anyway.
GRAPH_PATIENCE_S = 120.0
MAX_GRAPH_WAIT_S = 15.0


@celery_app.task(name=queues.TASK_STARFACE_EVENT, base=TenantTask, bind=True, ignore_result=True,
                 max_retries=CONFLICT_RETRIES)
def handle_starface_event(self: TenantTask, tenant_id: int, event: dict[str, Any],
                          received_at: str, graph_retries: int = 0) -> dict[str, Any]:
    """``graph_retries``: how many of the task's retries were for Graph. Celery keeps one count per task;
    the conflict retries' limit must not include a throttling storm's retries."""
    try:
        return run_event(self.runtime, tenant_id, event)
    except SessionConflict as exc:
        conflicts = self.request.retries - graph_retries
        wait_s = min(MAX_CONFLICT_WAIT_S, 0.05 * (conflicts + 1))
        raise self.retry(exc=exc, countdown=wait_s, max_retries=CONFLICT_RETRIES + graph_retries) from None
    except GraphError as exc:
        waited_s = (utcnow() - datetime.fromisoformat(received_at)).total_seconds()
        if exc.permanent or waited_s >= GRAPH_PATIENCE_S:
            log.error("tenant %s: Teams session change failed: %s", tenant_id, exc.message)
            return {"failed": type(exc).__name__}
        wait_s = getattr(exc, "retry_after", None) or 2.0 ** min(graph_retries, 4)
        # Bounded by the time since receipt, not by a count.
        raise self.retry(exc=exc, countdown=min(MAX_GRAPH_WAIT_S, wait_s),
                         kwargs={**self.request.kwargs, "graph_retries": graph_retries + 1},
                         max_retries=self.request.retries + 1) from None
