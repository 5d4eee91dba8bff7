"""Holding our Teams presence session for a user: decide, claim, call Graph, record - one code path for
STARFACE events, the keep-alive and drift repair.

The decision is a function of the user's two applied states (the engine's ``TeamsSessionAction``). The
Teams row is claimed by compare-and-set before Graph is called, so two workers never set or clear the
same session twice; a lost claim means another worker changed the row first, and the caller decides
again from the new state (``SessionConflict``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from connectors.graph import GraphError
from models import AppliedState, Target, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from models.store import (
    claim,
    compare_and_set,
    complete_claim,
    ensure_row,
    is_claimed,
    record_change,
)
from presence import (
    SESSION_EXPIRY,
    SessionActionKind,
    StarfaceApplied,
    TeamsApplied,
    TeamsSessionAction,
    after_failed_change,
)
from sync import health
from sync.apply import CLAIM_LEASE, owned_fields
from sync.runtime import Runtime

log = logging.getLogger(__name__)

Decide = Callable[[TeamsApplied, StarfaceApplied], TeamsSessionAction]


class SessionConflict(Exception):
    """Another worker changed the user's applied state first; decide again from the new state."""


def _rows(session: Session, tenant_id: int, link_id: int) -> tuple[AppliedState, AppliedState]:
    """The user's Teams and STARFACE applied-state rows, created empty where missing. Read first: they
    nearly always exist, and an INSERT .. ON CONFLICT DO NOTHING per target and event cost two statements
    (and two ids of the table's sequence) for every echo event of a burst."""
    rows = _read_rows(session, link_id)
    missing = [target for target in (Target.TEAMS.value, Target.STARFACE.value) if target not in rows]
    for target in missing:
        ensure_row(session, tenant_id=tenant_id, user_link_id=link_id, target=target)
    if missing:
        rows = _read_rows(session, link_id)
    return rows[Target.TEAMS.value], rows[Target.STARFACE.value]


#: A user's applied rows, built once (sync/events.py: per event a new statement costs more to run).
_ROWS_OF_USER = select(AppliedState).where(AppliedState.user_link_id == bindparam("link_id"))


def _read_rows(session: Session, link_id: int) -> dict[str, AppliedState]:
    return {row.target: row for row in session.scalars(_ROWS_OF_USER, {"link_id": link_id})}


def reconcile_session(runtime: Runtime, tenant: Tenant, link: UserLink, decide: Decide, cause: str,
                      observed_at: datetime | None) -> dict[str, Any]:
    """Decides the user's Teams session from its applied states and carries the decision out."""
    claim_id = uuid.uuid4().hex
    now = utcnow()
    with transaction(runtime.sessions) as session:
        teams_row, starface_row = _rows(session, tenant.id, link.id)
        if is_claimed(teams_row, now):
            raise SessionConflict(f"user {link.id}: a session change is in flight")
        applied_teams = TeamsApplied.from_json(teams_row.fields)
        applied_starface = StarfaceApplied.from_json(starface_row.fields)
        action = decide(applied_teams, applied_starface)
        if action.starface != applied_starface and not compare_and_set(
            session, tenant_id=tenant.id, user_link_id=link.id, target=Target.STARFACE.value,
            expected_version=starface_row.version, fields=action.starface.to_json(),
            owned=owned_fields(action.starface), observed_at=starface_row.observed_at,
            observed_seq=starface_row.observed_seq, now=now,
        ):
            raise SessionConflict(f"user {link.id}: STARFACE applied state changed meanwhile")
        if action.kind is SessionActionKind.NOTHING:
            if action.teams != applied_teams and not compare_and_set(
                session, tenant_id=tenant.id, user_link_id=link.id, target=Target.TEAMS.value,
                expected_version=teams_row.version, fields=action.teams.to_json(),
                owned=["session"] if action.teams.held else [], observed_at=teams_row.observed_at, now=now,
            ):
                raise SessionConflict(f"user {link.id}: Teams applied state changed meanwhile")
            return {"action": "unchanged"}
        if not claim(session, user_link_id=link.id, target=Target.TEAMS.value,
                     expected_version=teams_row.version, claim_id=claim_id,
                     claim_fields={"action": action.kind.value}, expires_at=now + CLAIM_LEASE, now=now):
            raise SessionConflict(f"user {link.id}: Teams applied state changed meanwhile")
        teams_row_observed_at = teams_row.observed_at
        before = {"session": None if applied_teams.held is None else
                  f"{applied_teams.held.availability}/{applied_teams.held.activity}"}

    graph = runtime.graph(tenant)
    entra_id = link.entra_object_id or ""
    try:
        if action.kind is SessionActionKind.CLEAR:
            graph.clear_presence(entra_id)  # a 404 (session lapsed already) counts as cleared
        else:
            assert action.pair is not None
            graph.set_presence(entra_id, action.pair.availability, action.pair.activity, SESSION_EXPIRY)
    except GraphError as exc:
        # A transient failure may have been applied by Graph (chaos suite: a caller who had hung up stayed
        # "Presenting"); a permanent one was not.
        facts = after_failed_change(applied_teams, action, maybe_applied=not exc.permanent)
        with transaction(runtime.sessions) as session:
            complete_claim(session, user_link_id=link.id, target=Target.TEAMS.value, claim_id=claim_id,
                           fields=facts.to_json(), owned=["session"] if facts.held else [],
                           observed_at=teams_row_observed_at, observed_seq=None, now=utcnow())
            health.record_error(session, tenant.id, type(exc).__name__, exc.message, poll=False)
        raise

    applied_at = utcnow()
    after = {"session": None if action.teams.held is None else
             f"{action.teams.held.availability}/{action.teams.held.activity}"}
    with transaction(runtime.sessions) as session:
        complete_claim(session, user_link_id=link.id, target=Target.TEAMS.value, claim_id=claim_id,
                       fields=action.teams.to_json(), owned=["session"] if action.teams.held else [],
                       observed_at=observed_at, observed_seq=None, now=applied_at)
        if action.kind is not SessionActionKind.REFRESH:
            record_change(session, tenant_id=tenant.id, user_link_id=link.id, target=Target.TEAMS.value,
                          before=before, after=after, cause=cause, observed_at=observed_at,
                          applied_at=applied_at)
            health.record_changes(session, tenant.id)
    return {"action": action.kind.value, **after}
