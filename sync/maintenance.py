"""Maintenance of one tenant (the periodic entries in workers/maintenance.py fan out one task per tenant):

- keep-alive: refresh the Teams sessions of calls in progress before they lapse, clear unwanted ones;
- directory sync: user links from both directories (sync/directory.py);
- drift repair: read STARFACE back (bridge getStates, or phoneconfig without a bridge) and repair
  what differs from the applied state - e.g. a chat text the STARFACE app overwrote;
- secret expiry: warn 30 days before the Entra client secret expires.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from connectors.graph import GraphError
from connectors.starface import StarfaceError
from models import AppliedState, Target, Tenant, TenantHealth, UserLink
from models.base import utcnow
from models.db import transaction
from models.secrets import read_secrets
from models.store import is_claimed
from presence import (
    SessionActionKind,
    StarfaceApplied,
    StarfaceReading,
    TeamsApplied,
    TenantPolicy,
    keep_alive,
    refresh_due_at,
    repair_teams_session,
)
from presence.linking import LinkState
from sync import health, rivals
from sync.apply import pbx_gate, repair_user
from sync.directory import sync_directory
from sync.ports import TaskQueue
from sync.release import release_tenant
from sync.runtime import Runtime
from sync.teams_session import SessionConflict, reconcile_session
from tenants.policy import policy_for
from tenants.provider_app import certificate_warning
from tenants.service import load_tenant
from tenants.summary import secret_expiry_warning

log = logging.getLogger(__name__)


def enabled_tenant_ids(runtime: Runtime, include_disabled: bool = False) -> list[int]:
    query = select(Tenant.id).order_by(Tenant.id)
    if not include_disabled:
        query = query.where(Tenant.enabled.is_(True))
    with transaction(runtime.sessions) as session:
        return list(session.scalars(query))


def _linked_with_states(runtime: Runtime, tenant_id: int) -> list[tuple[UserLink, dict[str, AppliedState]]]:
    with transaction(runtime.sessions) as session:
        links = list(session.scalars(
            select(UserLink).where(UserLink.tenant_id == tenant_id, UserLink.state == LinkState.LINKED.value)
        ))
        rows = session.scalars(select(AppliedState).where(AppliedState.tenant_id == tenant_id))
        states: dict[int, dict[str, AppliedState]] = {}
        for row in rows:
            states.setdefault(row.user_link_id, {})[row.target] = row
    return [(link, states.get(link.id, {})) for link in links]


# --- keep-alive -----------------------------------------------------------------------------------------
def run_keep_alive(runtime: Runtime, tenant_id: int, now: datetime | None = None) -> dict[str, int]:
    """Refreshes due sessions of one tenant (a user without a held or wanted session costs no Graph call)."""
    with transaction(runtime.sessions) as session:
        tenant = load_tenant(session, tenant_id)
    if tenant is None or not tenant.has_bridge:
        return {}
    policy = policy_for(tenant)
    counts = {"refreshed": 0, "conflicts": 0, "errors": 0}
    for link, rows in _linked_with_states(runtime, tenant_id):
        teams_row = rows.get(Target.TEAMS.value)
        if teams_row is None:
            continue
        teams = TeamsApplied.from_json(teams_row.fields)
        at = now or utcnow()
        if teams.held is None and not teams.call_active:
            continue
        due = refresh_due_at(teams)
        if teams.held is not None and teams.call_active and due is not None and due > at:
            continue  # a call's session refreshed lately: nothing to do, no transaction for it
        try:
            result = reconcile_session(
                runtime, tenant, link, lambda t, s, at=at: keep_alive(policy, t, s, at),
                cause="keep-alive", observed_at=None,
            )
            counts["refreshed"] += result["action"] != "unchanged"
        except SessionConflict:
            counts["conflicts"] += 1  # an event is changing this user right now; next round looks again
        except GraphError as exc:
            counts["errors"] += 1
            log.warning("tenant %s user %s: keep-alive failed: %s", tenant_id, link.id, exc.message)
    return counts


# --- drift repair ---------------------------------------------------------------------------------------
#: Without a bridge the read-back is one GET per user at the PBX's rate (20/s by default): a round reads
#: for this long at most, in a random order, and later rounds (every 5 minutes) read the others, so a
#: large tenant's task ends well within its time limit (sync.ports.TASK_SOFT_TIME_LIMIT_S).
READ_BACK_BUDGET_S = 25.0


def _readings(runtime: Runtime, tenant: Tenant, links: list[UserLink]) -> dict[int, StarfaceReading]:
    """STARFACE as it is now, through the PBX's gate (the read-back counts against its limits too)."""
    gate = pbx_gate(runtime, tenant)
    bridge = runtime.bridge(tenant)
    if bridge is not None:
        with gate.request(bulk=True):
            states = bridge.get_states([link.starface_account_id for link in links])
        return {
            s.account: StarfaceReading(dnd=s.dnd, chat_text=s.chat_presence_message,
                                       telephony_state=str(s.telephony_state),
                                       chat_symbol=str(s.chat_presence))
            for s in states
        }
    rest = runtime.starface(tenant)
    readings = {}
    started = time.monotonic()
    with gate.lane() as lane:  # one user after another: one slot, handed on
        for link in random.sample(links, len(links)):
            if readings and time.monotonic() - started > READ_BACK_BUDGET_S:
                log.info("tenant %s: drift repair read back %d of %d users; the others in a later round",
                         tenant.id, len(readings), len(links))
                break
            account = link.starface_account_id
            with lane.request():
                readings[account] = StarfaceReading(dnd=rest.get_dnd(account))
    return readings


def _session_may_need_repair(policy: TenantPolicy, reading: StarfaceReading, rows: dict[str, AppliedState],
                             now: datetime) -> bool:
    """A user with a Teams row is always looked at; one without only if the read-back asks for a session
    (no row is written for the thousands of users who are simply not on a call)."""
    if Target.TEAMS.value in rows:
        return True
    starface = rows.get(Target.STARFACE.value)
    if starface is not None and is_claimed(starface, now):
        return False  # an update is writing (maybe the telephony status): the next round looks again
    applied = StarfaceApplied.from_json(starface.fields) if starface is not None else StarfaceApplied()
    action = repair_teams_session(policy, reading, TeamsApplied(), applied, now)
    return action.kind is not SessionActionKind.NOTHING


def run_drift_repair(runtime: Runtime, tenant_id: int, queue: TaskQueue) -> dict[str, int]:
    """Reads the tenant's STARFACE users back and repairs drift (one getStates call with a bridge).

    For a disabled tenant it releases instead what we still hold (sync/release.py).
    """
    with transaction(runtime.sessions) as session:
        tenant = load_tenant(session, tenant_id, include_disabled=True)
    if tenant is None:
        return {}
    if not tenant.enabled:
        return release_tenant(runtime, queue, tenant)
    policy = policy_for(tenant)
    # With Teams sessions, users we never wrote for are read too: a lost call-start event of theirs
    # leaves them without applied rows, and only the read-back finds the call.
    sessions_wanted = policy.teams_session_enabled
    pairs = [(link, rows) for link, rows in _linked_with_states(runtime, tenant_id)
             if rows or sessions_wanted]
    counts = {"checked": len(pairs), "repaired": 0, "sessions": 0}
    if not pairs:
        return counts
    readings = _readings(runtime, tenant, [link for link, _ in pairs])
    for link, rows in pairs:
        reading = readings.get(link.starface_account_id)
        if reading is None:
            continue
        starface_row = rows.get(Target.STARFACE.value)
        if starface_row is not None and not is_claimed(starface_row, utcnow()) \
                and repair_user(runtime, tenant, policy, link, starface_row, reading,
                                rows.get(Target.TEAMS.value), cause="drift-repair"):
            counts["repaired"] += 1
            rivals.observe_repair(runtime, tenant, link, starface_row, reading)
        now = utcnow()
        if sessions_wanted and _session_may_need_repair(policy, reading, rows, now):
            try:
                result = reconcile_session(
                    runtime, tenant, link,
                    lambda t, s, now=now, reading=reading: repair_teams_session(policy, reading, t, s, now),
                    cause="drift-repair", observed_at=None,
                )
                counts["sessions"] += result["action"] != "unchanged"
            except (SessionConflict, GraphError) as exc:
                log.info("tenant %s user %s: session repair deferred: %s", tenant_id, link.id, exc)
    if policy.teams_session_enabled:
        rivals.observe_teams(runtime, tenant)  # another application's Teams sessions
    return counts


# --- secret expiry --------------------------------------------------------------------------------------
def read_secret_expiry(runtime: Runtime, tenant: Tenant) -> datetime | None:
    """The own app's client-secret expiry as Entra has it, where the customer granted Application.Read.All;
    None otherwise (then the date the admin entered counts)."""
    try:
        secret = read_secrets(tenant, runtime.box).ms_client_secret
        return runtime.graph(tenant).client_secret_expiry(secret[:3]) if secret else None
    except GraphError as exc:
        log.debug("tenant %s: client-secret expiry not readable from Entra (%s)", tenant.id, exc.message)
        return None


def run_secret_expiry(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Warns in each tenant's health before its credential expires: the client secret of its own app (the
    expiry read from Entra where permitted, else the date the admin entered), or the certificate of the
    provider's app for tenants that sign in with it."""
    now = now or utcnow()
    warned = 0
    provider_warning = certificate_warning(runtime.provider_app, now)
    with transaction(runtime.sessions) as session:
        own_app = [t for t in session.scalars(select(Tenant)) if t.enabled and not t.uses_provider_app]
    read = {tenant.id: expiry for tenant in own_app if (expiry := read_secret_expiry(runtime, tenant))}
    with transaction(runtime.sessions) as session:
        for tenant in session.scalars(select(Tenant)):
            if tenant.id in read and tenant.ms_secret_expires_at != read[tenant.id]:
                tenant.ms_secret_expires_at = read[tenant.id]  # Entra's date beats the one typed by hand
            if tenant.uses_provider_app:
                warning = provider_warning
            else:
                warning = secret_expiry_warning(tenant.ms_secret_expires_at, now)
            if warning:  # the same text `teamsconnect tenant show` prints, with the tenant's name in the fix
                warning = warning.replace("NAME", tenant.slug)
            warned += warning is not None
            session.execute(update(TenantHealth).where(TenantHealth.tenant_id == tenant.id)
                            .values(secret_expiry_warning=warning))
            if warning:
                log.warning("tenant %s: %s", tenant.id, warning)
    return {"warned": warned}


# --- directory sync -------------------------------------------------------------------------------------
def run_directory_sync(runtime: Runtime, tenant_id: int, queue: TaskQueue) -> dict[str, Any]:
    """The tenant's directory sync; a Graph or STARFACE failure is recorded in its health."""
    with transaction(runtime.sessions) as session:
        tenant = load_tenant(session, tenant_id)
    if tenant is None:
        return {}
    try:
        return sync_directory(runtime, tenant, queue)
    except (GraphError, StarfaceError) as exc:
        with transaction(runtime.sessions) as session:
            health.record_error(session, tenant_id, type(exc).__name__, str(exc), poll=False)
        log.warning("tenant %s: directory sync failed: %s", tenant_id, exc)
        return {"failed": type(exc).__name__}
