"""Rival syncs: another presence sync fighting ours, inferred from evidence and kept as findings.

STARFACE's own "Microsoft Presence Sync" (9.0.0.9+) warns that only one sync may be active; a second
TeamsConnect (or a module such as fluxpunkt's) on the same PBX or Microsoft tenant fights ours: DND and
chat text flip without a write of ours, and Teams shows presence sessions we did not set. Evidence:

- **PBX** (``observe_event``): a bridge event with origin "integration" (REST API, a module) that
  contradicts what we applied and is no echo of ours - our DND switched off, a DND switched on where we
  keep it off, our chat text replaced, a text written where we show none. Our own writes are excluded: an
  update in flight holds a claim, and events older than our last write are echoes.
- **PBX** (``observe_repair``): drift repair had to switch DND back (DND by hand is never repaired, so
  something else wrote it - an event that would have told us the origin was lost).
- **Teams** (``observe_teams``): while we hold a presence session for a user, Graph shows another pair
  that only an application sets (Busy/InACall, Busy/InAConferenceCall, DoNotDisturb/Presenting) at our
  rank or above: another app holds a session. (A user presenting looks the same once; hence hysteresis.)
- **Configuration** (``check_shared``, at directory sync): two of our tenants on the same PBX (same base
  URL), or the same Entra user linked in two tenants of the same directory.

Each kind becomes a finding (models/findings.py) after ``threshold`` pieces in a window and clears after
a quiet period, so a one-off coincidence never shows and an ongoing fight does not flap. No evidence is
counted while ``teamsconnect bridge verify`` runs its round trips on the tenant.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import aliased

from connectors.graph import GraphError
from models import AppliedState, Target, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from models.findings import Finding, Hysteresis, record_evidence, resolve
from models.store import is_claimed
from presence import StarfaceApplied, StarfaceReading, TeamsApplied
from presence.linking import LinkState
from sync.bridge_probe import is_verifying
from sync.runtime import Runtime

log = logging.getLogger(__name__)

RIVAL_PBX = "rival_sync_pbx"
RIVAL_TEAMS = "rival_sync_teams"
SHARED_PBX = "shared_pbx"
SHARED_ENTRA_USER = "shared_entra_user"

#: Three pieces of evidence within 20 minutes raise a rival finding (drift repair alone, every 5 minutes,
#: can get there); 30 quiet minutes clear it.
RIVAL_RULE = Hysteresis(threshold=3, window=timedelta(minutes=20), quiet=timedelta(minutes=30))
#: A configuration fact needs no second look; it clears when the check no longer finds it.
SHARED_RULE = Hysteresis(threshold=1, window=timedelta(days=1), quiet=timedelta(days=3650))
#: An event up to this much older than our last write to the user is taken for an echo of ours.
ECHO_MARGIN = timedelta(seconds=2)
#: Pairs only an application sets through setPresence (graph-api.md section 2), with their rank.
_APP_PAIRS = {("Busy", "InACall"), ("Busy", "InAConferenceCall"), ("DoNotDisturb", "Presenting")}
_RANK = {"DoNotDisturb": 4, "Busy": 3, "Available": 2, "Away": 1}

PBX_FIX = ("Only one presence sync may drive this PBX. In STARFACE switch off the other one: Admin > "
           "Erweiterte Einstellungen > Microsoft Presence (STARFACE's own Microsoft Presence Sync, "
           "9.0.0.9+), or stop the other Teams module instance under Admin > Module; if a second "
           "TeamsConnect tenant serves this PBX, delete or disable it. / Nur eine Presence-Synchronisation "
           "darf aktiv sein.")
TEAMS_FIX = ("Another application sets Teams presence for these users. In Microsoft Entra (Enterprise "
             "applications) look for other apps with the permission Presence.ReadWrite.All - e.g. the one "
             "STARFACE's Microsoft Presence Sync uses, or a second TeamsConnect - and switch that sync off "
             "(STARFACE: Admin > Erweiterte Einstellungen > Microsoft Presence).")


def _record(runtime: Runtime, tenant_id: int, kind: str, evidence: str, fix: str,
            now: datetime | None = None) -> None:
    with transaction(runtime.sessions) as session:
        row = record_evidence(session, tenant_id, kind, evidence, fix, RIVAL_RULE, now=now)
        raised_now = row.raised_at is not None and row.raised_at == row.last_seen
    if raised_now:
        log.warning("tenant %s: finding %s raised: %s", tenant_id, kind, evidence)


# --- PBX: events and drift repair -----------------------------------------------------------------------
def _contradiction(applied: StarfaceApplied, args: dict[str, Any]) -> str | None:
    if args["type"] == "dnd":
        if applied.dnd_ours and args.get("dnd") is False:
            return "DND was switched off by another integration while TeamsConnect holds it on"
        if args.get("dnd") is True and not applied.dnd_ours and not applied.dnd_manual:
            return "DND was switched on by another integration while TeamsConnect keeps it off"
        return None
    if args["type"] == "presence":
        text = args.get("chat_presence_message") or ""
        if applied.chat_text is not None and text != applied.chat_text:
            return (f"the chat text '{applied.chat_text}' of TeamsConnect was replaced by another "
                    f"integration with '{text}'")
        if applied.chat_text is None and text:
            return f"another integration wrote the chat text '{text}' where TeamsConnect shows none"
    return None


def may_be_evidence(args: dict[str, Any]) -> bool:
    """Only a DND or chat status that an integration wrote can be another sync's (``observe_event``)."""
    return args.get("origin") == "integration" and args.get("type") in ("dnd", "presence")


def observe_event(runtime: Runtime, tenant: Tenant, link: UserLink, args: dict[str, Any],
                  row: AppliedState | None) -> bool:
    """Counts a bridge event as evidence of a rival sync if it contradicts what we applied (see module
    docstring); True if it did. ``row`` is the user's STARFACE applied state, read by the caller with the
    user where ``may_be_evidence`` (None: nothing of ours). Never raises: detection must not fail the
    event's processing."""
    if not may_be_evidence(args):
        return False
    try:
        occurred_at = datetime.fromisoformat(args["occurred_at"])
        if is_verifying(runtime.coordination, tenant.id, occurred_at.timestamp()):
            return False  # the round trips of `teamsconnect bridge verify`
        if row is None or is_claimed(row, utcnow()):
            return False  # nothing of ours to fight over, or our own write is in flight
        if occurred_at < row.applied_at - ECHO_MARGIN:
            return False  # older than our last write: an echo of an earlier write of ours
        what = _contradiction(StarfaceApplied.from_json(row.fields), args)
        if what is None:
            return False
        _record(runtime, tenant.id, RIVAL_PBX, f"user {link.login_id}: {what} (bridge event "
                f"{args.get('event_id')}, origin 'integration')", PBX_FIX)
        return True
    except Exception:  # noqa: BLE001 - evidence is best effort; the event itself must still be processed
        log.exception("tenant %s: rival-sync check of an event failed", tenant.id)
        return False


def observe_repair(runtime: Runtime, tenant: Tenant, link: UserLink, row: AppliedState,
                   reading: StarfaceReading) -> bool:
    """Drift repair had to write the user back: what it found overwritten is evidence that something
    keeps writing - another sync, or the STARFACE app overwriting the chat status (origin lost with the
    event). A DND switched by hand is never repaired, so it never counts here."""
    applied = StarfaceApplied.from_json(row.fields)
    found = []
    if reading.dnd is not None and not applied.dnd_manual and reading.dnd != applied.dnd_ours:
        found.append(f"DND {'on' if reading.dnd else 'off'}")
    if None not in (reading.chat_text, applied.chat_text) and reading.chat_text != applied.chat_text:
        found.append(f"chat text '{reading.chat_text}' instead of '{applied.chat_text}'")
    if not found or is_verifying(runtime.coordination, tenant.id):
        return False
    _record(runtime, tenant.id, RIVAL_PBX, f"user {link.login_id}: drift repair found {' and '.join(found)} "
            "and wrote it back", PBX_FIX + " If no other sync is installed, the STARFACE app (UCC client) "
            "may be setting the chat status: ask the user to leave it unchanged.")
    return True


# --- Teams: sessions of another application -------------------------------------------------------------
def observe_teams(runtime: Runtime, tenant: Tenant) -> int:
    """Reads Graph for the users we hold a session for (one getPresencesByUserId per 650) and counts every
    user showing another application's pair as evidence; returns how many did."""
    now = utcnow()
    with transaction(runtime.sessions) as session:
        rows = session.execute(
            select(UserLink, AppliedState).join(AppliedState, AppliedState.user_link_id == UserLink.id)
            .where(UserLink.tenant_id == tenant.id, UserLink.state == LinkState.LINKED.value,
                   AppliedState.target == Target.TEAMS.value)
        ).all()
    held: dict[str, tuple[UserLink, tuple[str, str]]] = {}
    for link, row in rows:
        teams = TeamsApplied.from_json(row.fields)
        if teams.held is not None and teams.expires_at is not None and teams.expires_at > now \
                and not is_claimed(row, now) and link.entra_object_id:
            held[link.entra_object_id.lower()] = (link, (teams.held.availability, teams.held.activity))
    if not held or runtime.coordination.take(tenant.id, max(1, len(held) // 650)) > 0:
        return 0  # nothing held, or the Graph budget is spent: the next repair looks again
    try:
        presences = runtime.graph(tenant).get_presences(list(held))
    except GraphError as exc:
        log.info("tenant %s: rival-session check skipped: %s", tenant.id, exc.message)
        return 0
    found = 0
    for presence in presences:
        link, ours = held[presence.user_id.lower()]
        seen = (presence.availability, presence.activity)
        if seen != ours and seen in _APP_PAIRS and _RANK.get(seen[0], 0) >= _RANK.get(ours[0], 0):
            found += 1
            _record(runtime, tenant.id, RIVAL_TEAMS,
                    f"user {link.login_id}: Teams shows {seen[0]}/{seen[1]} while TeamsConnect holds "
                    f"{ours[0]}/{ours[1]}: another application holds a presence session (or the user is "
                    "presenting)", TEAMS_FIX)
    return found


# --- configuration: two tenants on one PBX or one Entra user --------------------------------------------
def _pbx_key(url: str) -> str:
    parts = urlsplit(url.strip().lower())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}{parts.path.rstrip('/')}"


def _mirror(session: Any, holder: Tenant, other: Tenant, kind: str, evidence: str, fix: str,
            now: datetime) -> None:
    record_evidence(session, holder.id, kind, evidence, fix, SHARED_RULE, now=now,
                    subject=f"tenant:{other.id}")


def check_shared(runtime: Runtime, tenant_id: int) -> dict[str, int]:
    """Records (on both tenants) that another enabled tenant uses the same PBX or links the same Entra
    users, and clears what is no longer so; returns the counts."""
    now = utcnow()
    with transaction(runtime.sessions) as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            return {}
        others = list(session.scalars(select(Tenant).where(Tenant.id != tenant_id, Tenant.enabled.is_(True))))
        same_pbx = [o for o in others if tenant.enabled and
                    _pbx_key(o.starface_base_url) == _pbx_key(tenant.starface_base_url)]
        for other in same_pbx:
            for holder, peer in ((tenant, other), (other, tenant)):
                _mirror(session, holder, peer, SHARED_PBX,
                        f"tenants '{holder.name}' and '{peer.name}' (id {peer.id}) both sync the STARFACE "
                        f"at {holder.starface_base_url}: two syncs fight over the same users",
                        f"Keep one: `teamsconnect tenant delete {peer.name}` (or disable it). If the PBX "
                        "really serves two customers, give each tenant its own users (selection) so no "
                        "user is synced twice.", now)
        mine, theirs = aliased(UserLink), aliased(UserLink)
        shared_users = session.execute(
            select(theirs.tenant_id, mine.display_name)
            .join(theirs, theirs.entra_object_id == mine.entra_object_id)
            .join(Tenant, Tenant.id == theirs.tenant_id)
            .where(mine.tenant_id == tenant_id, theirs.tenant_id != tenant_id,
                   mine.state == LinkState.LINKED.value, theirs.state == LinkState.LINKED.value,
                   Tenant.enabled.is_(True), Tenant.ms_directory_id == tenant.ms_directory_id)
        ).all() if tenant.enabled else []
        by_tenant: dict[int, list[str]] = {}
        for other_id, name in shared_users:
            by_tenant.setdefault(other_id, []).append(name)
        names = {o.id: o for o in others}
        for other_id, users in by_tenant.items():
            other = names[other_id]
            example = ", ".join(sorted(users)[:3]) + (" ..." if len(users) > 3 else "")
            for holder, peer in ((tenant, other), (other, tenant)):
                _mirror(session, holder, peer, SHARED_ENTRA_USER,
                        f"{len(users)} Microsoft 365 user(s) ({example}) are linked in both '{holder.name}' "
                        f"and '{peer.name}' (id {peer.id}): two syncs set their Teams presence",
                        f"Sync each user in one tenant only: narrow the selection of one of them "
                        f"(`teamsconnect tenant set {peer.name} selection.login_ids=...`) or delete the "
                        "duplicate tenant.", now)
        for kind, keep in ((SHARED_PBX, {o.id for o in same_pbx}), (SHARED_ENTRA_USER, set(by_tenant))):
            resolve(session, tenant_id, kind, {f"tenant:{i}" for i in keep}, now)
            stale = session.scalars(select(Finding).where(
                Finding.kind == kind, Finding.subject == f"tenant:{tenant_id}",
                Finding.tenant_id.not_in(keep)))
            for row in stale:  # the mirrored rows on tenants that no longer share with this one
                row.raised_at, row.cleared_at, row.window_count = None, now, 0
    return {"shared_pbx": len(same_pbx), "shared_entra_users": sum(len(u) for u in by_tenant.values())}
