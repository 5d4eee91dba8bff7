"""STARFACE event: a verified bridge event (webhook) -> the user's Teams presence session.

The web app verified the signature and deduplicated the event id; this task finds the user within the
event's tenant only (tenant isolation), lets the engine apply the event to the user's level facts and
sets, refreshes or clears our Teams session. A concurrent change to the same user makes the task try
again shortly (events are facts; the engine orders them by ``occurredAt``, so a retry is safe).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from connectors import starface
from models import AppliedState, Target, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from models.store import is_claimed, load_applied_states
from presence import EventKind, Origin, StarfaceEvent, StarfaceReading, TenantPolicy, decide_teams_session
from presence.linking import LinkState
from sync import rivals
from sync.apply import repair_user
from sync.runtime import Runtime
from sync.teams_session import SessionConflict, reconcile_session

log = logging.getLogger(__name__)


def event_to_args(event: starface.StarfaceEvent) -> dict[str, Any]:
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


def engine_event(args: dict[str, Any]) -> StarfaceEvent:
    """The task arguments (``event_to_args``) as the engine's event."""
    return StarfaceEvent(
        kind=EventKind(args["type"]),
        origin=Origin(args["origin"]),
        occurred_at=datetime.fromisoformat(args["occurred_at"]),
        telephony_state=args.get("telephony_state"),
        dnd=args.get("dnd"),
        chat_presence=args.get("chat_presence"),
        chat_text=args.get("chat_presence_message"),
    )


#: The user of an event and their STARFACE row, as statements built once: a statement built per event cost
#: about 130 us more CPU to run than a prebuilt one (SQLAlchemy computes each new one's cache key).
_USER_BY_ACCOUNT = select(UserLink).where(UserLink.tenant_id == bindparam("tenant_id"),
                                          UserLink.starface_account_id == bindparam("account"))
_STARFACE_ROW = select(AppliedState).where(AppliedState.user_link_id == bindparam("link_id"),
                                           AppliedState.target == Target.STARFACE.value)


def run_event(runtime: Runtime, tenant_id: int, event_args: dict[str, Any]) -> dict[str, Any]:
    """Processes one event; raises SessionConflict when another worker changed the user meanwhile."""
    event = engine_event(event_args)
    with transaction(runtime.sessions) as session:
        # The tenant as kept by this process while its configuration is unchanged (one statement, no ORM
        # load): a burst's echo events of our own writes spent a third of their time loading it.
        kept = runtime.tenant_policies.load(session, [tenant_id]).get(tenant_id)
        if kept is None:
            return {"ignored": "tenant gone or disabled"}
        tenant, policy = kept
        link = session.scalars(_USER_BY_ACCOUNT, {"tenant_id": tenant_id,
                                                  "account": int(event_args["account"])}).one_or_none()
        starface_row = None
        if link is not None and rivals.may_be_evidence(event_args):  # in this transaction, not one more
            starface_row = session.scalars(_STARFACE_ROW, {"link_id": link.id}).one_or_none()
    if link is None or link.state != LinkState.LINKED.value or not link.entra_object_id:
        return {"ignored": "user not synced"}
    rivals.observe_event(runtime, tenant, link, event_args, starface_row)  # evidence of another sync
    if event.kind is EventKind.PRESENCE:
        return _chat_text_changed(runtime, tenant, policy, link, event)
    now = utcnow()
    return reconcile_session(
        runtime, tenant, link,
        lambda teams, starface: decide_teams_session(policy, event, teams, starface, now),
        cause=f"starface:{event.kind.value}:{event_args.get('telephony_state') or event_args.get('dnd')}",
        observed_at=event.occurred_at,
    )


def _chat_text_changed(
    runtime: Runtime, tenant: Tenant, policy: TenantPolicy, link: UserLink, event: StarfaceEvent
) -> dict[str, Any]:
    """The chat status changed in STARFACE: if the STARFACE app overwrote a text of ours that the user's
    Teams status still asks for, put it back now instead of at the next drift repair."""
    if event.origin is not Origin.USER:
        return {"ignored": "a chat status written by an integration (usually ours)"}
    with transaction(runtime.sessions) as session:
        rows = load_applied_states(session, [link.id])
    starface_row = rows.get((link.id, Target.STARFACE.value))
    if starface_row is None:
        return {"ignored": "nothing of ours applied"}
    if is_claimed(starface_row, utcnow()):
        # An update (possibly a batch of many users) is being written: decide once it is recorded.
        raise SessionConflict(f"user {link.id}: a STARFACE update is in flight")
    reading = StarfaceReading(chat_text=event.chat_text or "", chat_symbol=event.chat_presence or None)
    teams_row = rows.get((link.id, Target.TEAMS.value))
    wrote = repair_user(runtime, tenant, policy, link, starface_row, reading, teams_row,
                        cause="starface:chat text overwritten")
    return {"repaired": wrote}
