"""Poll: one Graph call for a batch of <=650 users, one decision per user, updates only for changes.

Per batch, whatever its size: one Graph request, and a constant number of database queries (a fingerprint
of the tenant's configuration, and the tenant with its rules only when that changed -
sync/tenant_policies.py; the batch's applied-state versions in ONE query, the documents of the rows of
the users to decide in one more, one health update). Users whose presence and applied rows are unchanged
since a "nothing to write" are not decided again (sync/settled.py), so a settled batch reads no
documents.
Updates are queued after the transaction, together (one task per up to APPLY_BATCH_MAX users), only for
users whose desired STARFACE state differs from the applied one, and not for users whose update is in
flight (an unexpired claim).

Several small tenants polled in one task (`run_poll_many`) share that constant: their tenants, their
applied states and their health stamps are each read or written in one statement for all of them, so a
packed task of 52 tenants costs the SQL of one poll (the fixed per-tenant cost is what small tenants pay).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from connectors.graph import GraphAuthError, GraphClient, GraphError, GraphThrottled, Presence
from models import Target, Tenant
from models.base import utcnow
from models.db import transaction
from models.store import (
    NO_APPLIED_ROWS,
    AppliedView,
    StateKey,
    applied_heads,
    is_claimed,
    read_applied_heads,
    read_applied_states,
)
from presence import (
    NO_TEAMS_SESSION,
    NOTHING_APPLIED,
    StarfaceApplied,
    TeamsApplied,
    TeamsObservation,
    TenantPolicy,
    decided_without_clock,
    plan_starface,
)
from sync import health
from sync.coordination import admit
from sync.ports import APPLY_BATCH_MAX, APPLY_EXPIRES_S, ApplyItem, Batch, TaskQueue
from sync.runtime import Runtime
from sync.settled import SettledKey, SettledUsers, TenantSettled, settled_key
from tenants.consent import CONSENT_MISSING_CODES, record_revoked

log = logging.getLogger(__name__)

#: Graph requests of one packed poll in flight at once. Each goes to another customer's Microsoft tenant
#: (its own budget and throttling), so reading them one after another only leaves the worker waiting for
#: Microsoft's round trips (tens of milliseconds each in production). They are sent from one thread
#: (connectors/graph/_reads.py): reading threads cost more CPU than the reads themselves, and more in
#: flight cost no more CPU. 16 for up to 80 tenants a task (scheduler/tick.py: PACK_TENANTS).
GRAPH_READS_IN_FLIGHT = 16

#: One tenant's batch as read from Graph: tenant id, batch, its presences, when they were read.
Read = tuple[int, Batch, list[Presence], datetime]


def run_poll(runtime: Runtime, tenant_id: int, batch: Batch, queue: TaskQueue,
             now: Callable[[], datetime] = utcnow) -> dict[str, Any]:
    """Polls one batch (of a large tenant, or a small tenant alone); returns a summary (for logs, Flower
    and tests). The one-tenant case of ``run_poll_many``."""
    return run_poll_many(runtime, [(tenant_id, batch)], queue, now)["results"][str(tenant_id)]


def run_poll_many(runtime: Runtime, polls: list[tuple[int, Batch]], queue: TaskQueue,
                  now: Callable[[], datetime] = utcnow) -> dict[str, Any]:
    """Polls the whole batches of several small tenants in one task (the scheduler packs them): each
    tenant is admitted, read and decided on its own, but the tenants, the applied states and the health
    stamps of all of them take one statement each, and their Graph requests (each to
    another customer's Microsoft tenant) run concurrently, GRAPH_READS_IN_FLIGHT at a time. A tenant's
    failure (Graph, its client, deciding for it) does not stop the others; a failure of the shared
    transaction fails them all (the next cycle polls them again)."""
    results: dict[str, Any] = {}
    admitted: list[tuple[int, Batch]] = []
    for (tenant_id, batch), refused in zip(polls, _admit_many(runtime, [t for t, _ in polls]), strict=True):
        if refused is not None:
            results[str(tenant_id)] = refused
        else:
            admitted.append((tenant_id, batch))
    read: list[Read] = []
    decided: list[tuple[int, Batch, list[Presence], list[ApplyItem], TenantSettled | None,
                        dict[int, SettledKey]]] = []
    with transaction(runtime.sessions) as session:
        tenants = runtime.tenant_policies.load(session, [tenant_id for tenant_id, _ in admitted])
        reads: list[tuple[Tenant, Batch, GraphClient]] = []
        for tenant_id, batch in admitted:
            if tenant_id not in tenants:
                results[str(tenant_id)] = {"skipped": "tenant gone or disabled"}
                continue
            tenant = tenants[tenant_id][0]
            try:
                reads.append((tenant, batch, runtime.graph(tenant)))  # built here, beside the session
            except Exception as exc:  # noqa: BLE001 - e.g. the provider app is missing: the others go on
                results[str(tenant_id)] = _record_failure(runtime, session, tenant, exc, now)
        fetched = _fetch_all(runtime, reads, now)
        for (tenant, batch, _), (outcome, observed_at) in zip(reads, fetched, strict=True):
            if isinstance(outcome, Exception):
                results[str(tenant.id)] = _record_failure(runtime, session, tenant, outcome, now)
            else:
                read.append((tenant.id, batch, outcome, observed_at))
        undecided = _undecided(runtime.settled, session, read, tenants)
        states = read_applied_states(session, [link_id for users, _, _ in undecided for link_id, _ in users])
        for (tenant_id, batch, presences, observed_at), (users, by_entra_id, settled) in zip(
                read, undecided, strict=True):
            decided_for: dict[int, SettledKey] = {}
            try:
                updates = _decide(tenants[tenant_id][1], users, by_entra_id, states, observed_at, settled,
                                  decided_for)
            except Exception as exc:  # noqa: BLE001 - one tenant's bad data must not stop the others
                log.exception("tenant %s: poll failed", tenant_id)
                results[str(tenant_id)] = {"failed": type(exc).__name__}
                continue
            decided.append((tenant_id, batch, presences, updates, settled, decided_for))
        health.record_success(session, [tenant_id for tenant_id, *_ in decided], now())
    for tenant_id, batch, presences, updates, settled, decided_for in decided:
        results[str(tenant_id)] = _queue_updates(runtime, queue, tenant_id, batch, presences, updates)
        if settled is not None and updates:  # queued now or before: not decided again for a while
            settled.remember_queued({link_id: decided_for[link_id] for link_id, _, _ in updates})
    return {"tenants": len(polls), "results": results}


def _admit_many(runtime: Runtime, tenant_ids: list[int]) -> list[dict[str, Any] | None]:
    """Per tenant: None when it may call Graph now (sync/coordination.py: admit), else the poll's summary
    of why not."""
    summaries: list[dict[str, Any] | None] = []
    for tenant_id, refusal in zip(tenant_ids, admit(runtime.coordination, tenant_ids), strict=True):
        if refusal is None:
            summaries.append(None)
            continue
        reason, wait_s = refusal
        if reason == "budget":
            log.warning("tenant %s: Graph budget exhausted, batch dropped (next cycle polls again)",
                        tenant_id)
        summaries.append({"skipped": reason, "retry_in_s": wait_s})
    return summaries


def _fetch_all(runtime: Runtime, reads: list[tuple[Tenant, Batch, GraphClient]],
               now: Callable[[], datetime]) -> list[tuple[list[Presence] | Exception, datetime]]:
    """Every read's outcome, in order, with when it was observed: several tenants' reads in flight
    together (runtime.presence_reads), one (a batch of a large tenant, which may take several requests)
    by its GraphClient."""
    if len(reads) <= 1:
        return [_fetch(graph, batch, now) for _, batch, graph in reads]
    return runtime.presence_reads(GRAPH_READS_IN_FLIGHT).read(
        [(graph, [entra_id for _, entra_id in batch]) for _, batch, graph in reads], now)


def _fetch(graph: GraphClient, batch: Batch,
           now: Callable[[], datetime]) -> tuple[list[Presence] | Exception, datetime]:
    """The batch's presences and when they were observed, or what went wrong."""
    try:
        return graph.get_presences([entra_id for _, entra_id in batch]), now()
    except Exception as exc:  # noqa: BLE001 - handed to _record_failure in the caller's thread
        return exc, now()


def _record_failure(runtime: Runtime, session: Session, tenant: Tenant, exc: Exception,
                    now: Callable[[], datetime]) -> dict[str, Any]:
    """Records a failed read in the tenant's health (in ``session``) and returns the poll's summary; an
    error that is not Graph's is logged with its traceback (the next cycle polls again)."""
    tenant_id = tenant.id
    if isinstance(exc, GraphThrottled):
        runtime.coordination.block(tenant_id, exc.retry_after)
        health.record_throttled(session, tenant_id, now() + timedelta(seconds=exc.retry_after))
        log.warning("tenant %s: Graph throttled, blocked for %.3f s", tenant_id, exc.retry_after)
        return {"skipped": "throttled", "retry_in_s": exc.retry_after}
    if isinstance(exc, GraphAuthError):
        code = f"AADSTS{exc.aadsts_code}" if exc.aadsts_code else "graph_auth"
        health.record_error(session, tenant_id, code, exc.message)
        if tenant.uses_provider_app and exc.aadsts_code in CONSENT_MISSING_CODES:
            record_revoked(session, tenant_id, code, exc.message)
        log.error("tenant %s: Microsoft sign-in failed: %s", tenant_id, exc.message)
        return {"failed": "auth"}
    if isinstance(exc, GraphError):
        health.record_error(session, tenant_id, type(exc).__name__, exc.message)
        log.warning("tenant %s: Graph error: %s", tenant_id, exc.message)
        return {"failed": type(exc).__name__}
    # Not Graph's answer (a bug, the provider app missing): the admin sees what failed, the worker log has
    # the traceback; the message quotes no exception text (it might hold an upstream answer).
    name = type(exc).__name__
    health.record_error(session, tenant_id, name, f"{name} while polling; the worker log has the details")
    log.error("tenant %s: poll failed", tenant_id, exc_info=exc)
    return {"failed": name}


def _undecided(memo: SettledUsers | None, session: Session, read: list[Read],
               tenants: dict[int, tuple[Tenant, TenantPolicy]]
               ) -> list[tuple[Batch, dict[str, Presence], TenantSettled | None]]:
    """Per read, in order: the users to decide this cycle, the presences by Entra id, and the tenant's
    remembered answers. A user is left out when Graph returned no presence for it, or when its presence
    and its applied rows' (id, version) are those of a remembered "nothing to write" (sync/settled.py):
    one statement reads the rows' heads for all reads, and their documents are then read only for the
    users left in."""
    heads = (read_applied_heads(session, [link_id for _, batch, _, _ in read for link_id, _ in batch])
             if memo is not None else None)
    if heads is None:  # switched off, or a database whose (id, version) does not name a state
        memo, heads = None, {}
    undecided: list[tuple[Batch, dict[str, Presence], TenantSettled | None]] = []
    for tenant_id, batch, presences, _ in read:
        by_entra_id = {presence.user_id: presence for presence in presences}
        settled = memo.of_tenant(tenant_id, tenants[tenant_id][1]) if memo is not None else None
        users: Batch = []
        for link_id, entra_id in batch:
            presence = by_entra_id.get(entra_id.lower())
            if presence is None:
                continue
            if settled is not None:
                key = settled_key(entra_id, presence, heads.get(link_id, NO_APPLIED_ROWS))
                if settled.holds(link_id, key) or settled.is_queued(link_id, key):
                    continue
            users.append((link_id, entra_id))
        undecided.append((users, by_entra_id, settled))
    return undecided


def _decide(policy: TenantPolicy, users: Batch, by_entra_id: dict[str, Presence],
            states: dict[StateKey, AppliedView], observed_at: datetime,
            settled: TenantSettled | None = None,
            decided_for: dict[int, SettledKey] | None = None) -> list[ApplyItem]:
    """The STARFACE updates these users need: one per user whose desired state differs from the applied
    one, none for a user whose update or Teams session change is in flight. A "nothing to write" that
    the clock cannot change is remembered in ``settled``; ``decided_for`` gets the key each update was
    decided for (its user is remembered as queued once the update is)."""
    updates: list[ApplyItem] = []
    starface, teams = Target.STARFACE.value, Target.TEAMS.value
    for link_id, entra_id in users:
        presence = by_entra_id.get(entra_id.lower())
        if presence is None:
            continue
        starface_row = states.get((link_id, starface))
        teams_row = states.get((link_id, teams))
        if is_claimed(starface_row, observed_at) or is_claimed(teams_row, observed_at):
            # An update, or a change of our Teams session, is in flight: the presence just read may
            # already show our new session while its row does not yet, so decide next cycle instead.
            continue
        applied_starface = StarfaceApplied.from_json(starface_row.fields) if starface_row else NOTHING_APPLIED
        applied_teams = TeamsApplied.from_json(teams_row.fields) if teams_row else NO_TEAMS_SESSION
        observation = TeamsObservation(presence.availability, presence.activity, presence.out_of_office,
                                       presence.sequence_number, observed_at)
        # A released claim's intent still on the row: an update stopped after some of its writes.
        unsettled = starface_row is not None and starface_row.claim_fields is not None
        plan = plan_starface(policy, observation, applied_starface, applied_teams, observed_at, unsettled)
        if plan is not None:
            updates.append((link_id, plan.to_json(), starface_row.version if starface_row else None))
            if decided_for is not None:
                decided_for[link_id] = settled_key(entra_id, presence, applied_heads(starface_row, teams_row))
        elif settled is not None and decided_without_clock(observation, applied_starface, applied_teams):
            settled.remember(link_id, settled_key(entra_id, presence, applied_heads(starface_row, teams_row)))
    return updates


def _queue_updates(runtime: Runtime, queue: TaskQueue, tenant_id: int, batch: Batch,
                   presences: list[Presence], updates: list[ApplyItem]) -> dict[str, Any]:
    """Queues the decided updates (after the commit) and returns the poll's summary. Users whose previous
    update still waits in the queue get no second one (it would only be dropped)."""
    fresh = (set(runtime.coordination.mark_pending(tenant_id, [link_id for link_id, _, _ in updates],
                                                   APPLY_EXPIRES_S))
             if updates else set())
    queued = [update for update in updates if update[0] in fresh]
    # The batch's changes are applied together (sync/apply.py: run_apply_batch), in tasks of at most
    # APPLY_BATCH_MAX users.
    for start in range(0, len(queued), APPLY_BATCH_MAX):
        queue.apply_batch(tenant_id, queued[start:start + APPLY_BATCH_MAX])
    return {"users": len(batch), "presences": len(presences), "updates": len(queued),
            "already_queued": len(updates) - len(queued)}
