"""Releasing what we set: nobody is left on a DND, chat text, telephony status or Teams session of ours
that no poll will ever clear - when a user stops being synced, or when a whole tenant is disabled.

A release is an ordinary STARFACE update (sync/apply.py) whose plan clears only what we own (a DND the
user set by hand stays), and, for the Teams side, our session cleared through the usual claim.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from connectors.graph import GraphError
from models import AppliedState, Target, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from models.store import load_applied_states
from presence import StarfacePlan, TeamsApplied, keep_alive
from presence.policy import DndAction
from sync.ports import APPLY_EXPIRES_S, TaskQueue
from sync.runtime import Runtime
from sync.teams_session import SessionConflict, reconcile_session
from tenants.policy import policy_for

log = logging.getLogger(__name__)


def release_plan(cause: str) -> dict[str, Any]:
    """A plan that clears our DND, text and telephony and sets nothing (task arguments)."""
    plan = StarfacePlan(category=None, dnd=DndAction.CLEAR, chat_text=None, telephony_active=False,
                        sequence_number=None, observed_at=utcnow(), cause=cause, release=True)
    return plan.to_json()


def queue_releases(runtime: Runtime, queue: TaskQueue, tenant_id: int, user_link_ids: list[int],
                   cause: str) -> int:
    """Queues a release for each of these users that holds a STARFACE output of ours; returns how many."""
    if not user_link_ids:
        return 0
    with transaction(runtime.sessions) as session:
        rows = list(load_applied_states(session, user_link_ids).values())
    return _queue(runtime, queue, tenant_id, rows, cause)


def _queue(runtime: Runtime, queue: TaskQueue, tenant_id: int, rows: list[AppliedState], cause: str) -> int:
    """Queues a release for each STARFACE row that owns something and has no update queued yet."""
    holding = {row.user_link_id: row.version for row in rows
               if row.target == Target.STARFACE.value and row.owned}
    fresh = runtime.coordination.mark_pending(tenant_id, list(holding), APPLY_EXPIRES_S)
    for link_id in fresh:
        queue.apply(tenant_id, link_id, release_plan(cause), holding[link_id])
    return len(fresh)


def release_tenant(runtime: Runtime, queue: TaskQueue, tenant: Tenant) -> dict[str, int]:
    """For a disabled tenant: queue the release of every STARFACE output of ours and clear our sessions."""
    with transaction(runtime.sessions) as session:
        links = {link.id: link
                 for link in session.scalars(select(UserLink).where(UserLink.tenant_id == tenant.id))}
        rows = list(session.scalars(select(AppliedState).where(AppliedState.tenant_id == tenant.id)))
    cause = "released: tenant disabled"
    queued = _queue(runtime, queue, tenant.id, rows, cause)
    no_sessions = replace(policy_for(tenant), set_teams_presence=False)
    cleared = 0
    for row in rows:
        link = links.get(row.user_link_id)
        held = row.target == Target.TEAMS.value and TeamsApplied.from_json(row.fields).held is not None
        if link is None or not held:
            continue
        now = utcnow()
        try:
            result = reconcile_session(runtime, tenant, link,
                                       lambda t, s, now=now: keep_alive(no_sessions, t, s, now),
                                       cause=cause, observed_at=None)
            cleared += result["action"] == "clear"
        except (SessionConflict, GraphError) as exc:
            log.info("tenant %s user %s: session release deferred: %s", tenant.id, link.id, exc)
    return {"released": queued, "sessions_cleared": cleared}
