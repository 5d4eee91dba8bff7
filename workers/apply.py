"""The STARFACE update task (sync/apply.py); transient STARFACE errors retry with exponential backoff."""

from __future__ import annotations

from typing import Any

from sync.apply import RetryableStarfaceError, run_apply, run_apply_batch
from workers import queues
from workers.app import celery_app
from workers.base import TenantTask
from workers.task_queue import CELERY_QUEUE

MAX_RETRIES = 5


@celery_app.task(name=queues.TASK_APPLY_STARFACE, base=TenantTask, bind=True, ignore_result=True,
                 max_retries=MAX_RETRIES)
def apply_starface(self: TenantTask, tenant_id: int, user_link_id: int, plan: dict[str, Any],
                   expected_version: int | None) -> dict[str, Any]:
    """Retries after 1, 2, 4, 8, 16 s. The user's "update queued" mark (set by the poll) is cleared once the
    update has run, whatever the outcome, except while a retry is pending."""
    coordination = self.runtime.coordination
    try:
        result = run_apply(self.runtime, tenant_id, user_link_id, plan, expected_version)
        coordination.clear_pending(tenant_id, user_link_id)
        return result
    except RetryableStarfaceError as exc:
        if exc.next_version is None or self.request.retries >= MAX_RETRIES:
            coordination.clear_pending(tenant_id, user_link_id)
            raise
        raise self.retry(
            exc=exc, countdown=2 ** self.request.retries,
            kwargs={"tenant_id": tenant_id, "user_link_id": user_link_id, "plan": plan,
                    "expected_version": exc.next_version},
        ) from None
    except Exception:
        coordination.clear_pending(tenant_id, user_link_id)
        raise


@celery_app.task(name=queues.TASK_APPLY_STARFACE_BATCH, base=TenantTask, bind=True, ignore_result=True)
def apply_starface_batch(self: TenantTask, tenant_id: int, items: list[list[Any]]) -> dict[str, Any]:
    """The updates one poll decided, applied together (sync/apply.py: run_apply_batch). Users whose write
    failed transiently continue as single updates (above) and keep their "update queued" mark; everyone
    else's mark is cleared, whatever the outcome."""
    pairs = [(int(link_id), dict(plan), None if version is None else int(version))
             for link_id, plan, version in items]
    coordination = self.runtime.coordination
    retrying: set[int] = set()
    try:
        result = run_apply_batch(self.runtime, tenant_id, pairs, CELERY_QUEUE)
        retrying = set(result.get("retrying", ()))
        return result
    finally:
        done = [link_id for link_id, _, _ in pairs if link_id not in retrying]
        coordination.clear_pending(tenant_id, *done)  # one round trip for the batch
