"""The tick: claim due tenants, split their linked users into <=650-id batches, hand out poll work.

Algorithm (one tick, run every second by beat; any number of beats or ticks may run at once):

1. Select enabled tenants whose ``next_poll_at`` is due (bounded chunk, oldest first).
2. Claim each with a conditional UPDATE on the ``next_poll_at`` value read in step 1 (one statement for
   the whole chunk). Of two ticks that read the same value exactly one updates the row; the other does
   not get the tenant back and skips it.
3. The next poll time keeps the tenant's phase (``seen + interval``) unless it fell behind, and the
   interval is stretched only as far as the Graph budget needs for the tenant's number of batches.
4. A tenant blocked by a 429 is not polled; its next poll moves to the end of the block.
5. For each claimed tenant, one poll task per batch of at most 650 users, expiring after two intervals;
   small tenants (<= SMALL_TENANT_USERS users) share one task, up to PACK_USERS users and PACK_TENANTS
   tenants.
6. A tenant with a bridge claimed more than CATCH_UP_AFTER_S after it was due (not its first poll) has
   not been served for a while: the broker, beat or every worker was down. Bridge events of that time may
   be lost on the way (a broker that crashed between taking a message and recording it as unacked; a
   webhook whose queued id could not be taken back), so the tick queues a drift repair for it, which
   reads the PBX's states and sets or clears Teams sessions by them - at most once per CATCH_UP_EVERY_S
   per tenant.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant, UserLink
from models.db import transaction
from presence.linking import LinkState
from sync.coordination import BudgetShape, Coordination
from sync.ports import Batch, QueueUnavailable, TaskQueue

log = logging.getLogger(__name__)
T = TypeVar("T")

GRAPH_BATCH_SIZE = 650
CLAIM_CHUNK = 500
#: A tick claims chunk after chunk while tenants are due, up to this many (10,000 tenants per tick).
MAX_CHUNKS_PER_TICK = 20
#: A tenant with at most this many linked users is polled in one task together with other small ones:
#: for 25 users a task's own cost (broker round trip, Celery bookkeeping) would outweigh the poll.
SMALL_TENANT_USERS = 100
#: The most users (and tenants) in one task of small tenants. A task's own cost (the Celery main
#: process's bookkeeping, the transaction, the Redis round trips) is shared by its tenants: 52 small
#: tenants per task cost 9 % less worker CPU per tenant-cycle than 26 (three same-run compares, December
#: 4). Their Graph reads go out 16 at a time (sync/poll.py), so such a task waits out as many Microsoft
#: round trips as a task of 26 did with 8, and a poll still waits no longer behind another tenant's.
PACK_USERS = 2 * GRAPH_BATCH_SIZE
PACK_TENANTS = 80
#: Due longer ago than this = five ticks missed: something was down (step 6).
CATCH_UP_AFTER_S = 5.0
#: At most one catch-up per tenant in this time (the periodic drift repair's interval), so a tick that
#: falls behind under load does not add a repair each cycle.
CATCH_UP_EVERY_S = 300.0
_CATCH_UP_NOTE = "catch-up"



@dataclass(frozen=True)
class TickResult:
    claimed: list[int]
    skipped_blocked: list[int]
    batches: int
    caught_up: list[int] = field(default_factory=list)


def batches_of(pairs: Sequence[tuple[int, str]], size: int = GRAPH_BATCH_SIZE) -> list[Batch]:
    """Splits users into consecutive batches of at most ``size`` (Graph getPresencesByUserId's limit)."""
    return [list(pairs[start:start + size]) for start in range(0, len(pairs), size)]


def pack_small_tenants(small: Sequence[T], users_of=lambda entry: len(entry[2]),  # type: ignore[no-untyped-def]
                       max_users: int = PACK_USERS, max_tenants: int = PACK_TENANTS) -> list[list[T]]:
    """Packs small tenants, in order, into groups of at most ``max_users`` users and ``max_tenants``
    tenants (one poll task each)."""
    groups: list[list[T]] = []
    current: list[T] = []
    count = 0
    for entry in small:
        size = users_of(entry)
        if current and (count + size > max_users or len(current) >= max_tenants):
            groups.append(current)
            current, count = [], 0
        current.append(entry)
        count += size
    if current:
        groups.append(current)
    return groups


def effective_interval_s(configured_s: float, linked_users: int, shape: BudgetShape) -> float:
    """The tenant's poll interval, stretched only as far as the Graph budget requires."""
    requests_per_cycle = math.ceil(linked_users / GRAPH_BATCH_SIZE)
    return max(configured_s, shape.min_interval_s(requests_per_cycle))


def next_poll_time(seen: datetime, now: datetime, interval_s: float) -> datetime:
    """Keeps the tenant's phase when on time; restarts from now when it fell behind by a whole interval."""
    interval = timedelta(seconds=interval_s)
    candidate = seen + interval
    return candidate if candidate > now else now + interval


def _linked_users(session: Session, tenant_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """Every due tenant's linked users, (user link id, Entra object id) in id order, in ONE query."""
    users: dict[int, list[tuple[int, str]]] = defaultdict(list)
    rows = session.execute(
        select(UserLink.tenant_id, UserLink.id, UserLink.entra_object_id)
        .where(UserLink.tenant_id.in_(tenant_ids), UserLink.state == LinkState.LINKED.value,
               UserLink.entra_object_id.is_not(None))
        .order_by(UserLink.tenant_id, UserLink.id)
    )
    for tenant_id, link_id, entra_id in rows:
        users[tenant_id].append((link_id, entra_id))
    return users


_CLAIM_TENANTS = text("""
UPDATE tenant AS t SET next_poll_at = v.next_at, updated_at = :now
  FROM (SELECT unnest(CAST(:ids AS integer[])) AS id, unnest(CAST(:seen AS timestamptz[])) AS seen,
               unnest(CAST(:next_at AS timestamptz[])) AS next_at) AS v
 WHERE t.id = v.id AND t.next_poll_at = v.seen
RETURNING t.id
""")


def _claim(session: Session, claims: list[tuple[int, datetime, datetime]], now: datetime) -> set[int]:
    """Claims tenants by a conditional UPDATE of ``next_poll_at`` from the value read (step 2): ONE
    statement for the whole chunk on PostgreSQL; returns the ids this tick won."""
    if not claims:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_CLAIM_TENANTS, {
            "ids": [c[0] for c in claims], "seen": [c[1] for c in claims], "next_at": [c[2] for c in claims],
            "now": now})
        return {tenant_id for (tenant_id,) in rows}
    won = set()
    for tenant_id, seen, next_at in claims:
        if session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.next_poll_at == seen)
            .values(next_poll_at=next_at)
            .execution_options(synchronize_session=False)
        ).rowcount == 1:
            won.add(tenant_id)
    return won


def run_tick(
    sessions: sessionmaker[Session],
    coordination: Coordination,
    queue: TaskQueue,
    now: datetime,
    shape: BudgetShape | None = None,
) -> TickResult:
    """One tick (see the module docstring): chunks of CLAIM_CHUNK due tenants, each claimed and handed
    out before the next, until none is due (at most MAX_CHUNKS_PER_TICK)."""
    claimed: list[int] = []
    blocked: list[int] = []
    caught_up: list[int] = []
    batches = 0
    for _ in range(MAX_CHUNKS_PER_TICK):
        chunk, due = _tick_chunk(sessions, coordination, queue, now, shape or BudgetShape.for_limit())
        claimed += chunk.claimed
        blocked += chunk.skipped_blocked
        caught_up += chunk.caught_up
        batches += chunk.batches
        if due < CLAIM_CHUNK:
            break
    return TickResult(claimed=claimed, skipped_blocked=blocked, batches=batches, caught_up=caught_up)


def _tick_chunk(sessions: sessionmaker[Session], coordination: Coordination, queue: TaskQueue, now: datetime,
                shape: BudgetShape) -> tuple[TickResult, int]:
    """One chunk of due tenants; returns what it did and how many were due in it. Enqueues only after
    the claims are committed."""
    claimed: list[tuple[int, float, list[tuple[int, str]]]] = []
    blocked: list[int] = []
    stalled: list[tuple[int, float]] = []
    with transaction(sessions) as session:
        due = session.execute(
            select(Tenant.id, Tenant.next_poll_at, Tenant.poll_interval_s, Tenant.has_bridge,
                   Tenant.created_at)
            .where(Tenant.enabled.is_(True), Tenant.next_poll_at <= now)
            .order_by(Tenant.next_poll_at)
            .limit(CLAIM_CHUNK)
        ).all()
        users = _linked_users(session, [row.id for row in due]) if due else {}
        wanted = []
        # The throttle blocks of the whole chunk in one Redis round trip, not one per tenant.
        blocks = coordination.blocked_for_many([row.id for row in due]) if due else []
        for row, blocked_s in zip(due, blocks, strict=True):
            tenant_id, seen, configured_s, has_bridge, created_at = row
            interval_s = effective_interval_s(configured_s, len(users.get(tenant_id, ())), shape)
            wanted.append((tenant_id, seen, next_poll_time(seen, now, max(interval_s, blocked_s)), interval_s,
                           blocked_s))
            overdue_s = (now - seen).total_seconds()
            # Still the poll time it was created with: never polled, so nothing of it was held up.
            never_polled = abs((seen - created_at).total_seconds()) < 1.0
            if has_bridge and overdue_s > CATCH_UP_AFTER_S and not never_polled:
                stalled.append((tenant_id, overdue_s))
        won = _claim(session, [(tenant_id, seen, next_at) for tenant_id, seen, next_at, _, _ in wanted], now)
        stalled = [(tenant_id, overdue_s) for tenant_id, overdue_s in stalled if tenant_id in won]
        for tenant_id, _, _, interval_s, blocked_s in wanted:
            if tenant_id not in won:
                continue  # another tick claimed it first
            if blocked_s > 0:
                blocked.append(tenant_id)
                continue
            claimed.append((tenant_id, interval_s, users.get(tenant_id, [])))
    batch_count = 0
    small: list[tuple[int, float, list[tuple[int, str]]]] = []
    for tenant_id, interval_s, users in claimed:
        if 0 < len(users) <= SMALL_TENANT_USERS:
            small.append((tenant_id, interval_s, users))
            continue
        for batch in batches_of(users):
            queue.poll(tenant_id, batch, now, interval_s)
            batch_count += 1
    for group in pack_small_tenants(small):
        if len(group) == 1:
            tenant_id, interval_s, users = group[0]
            queue.poll(tenant_id, users, now, interval_s)
        else:
            queue.poll_many([(tenant_id, users) for tenant_id, _, users in group], now,
                            min(interval_s for _, interval_s, _ in group))
        batch_count += len(group)
    if blocked:
        log.info("tick: tenants %s are throttled by Graph; their polls wait for Retry-After", blocked)
    caught_up = _catch_up(coordination, queue, stalled)
    return TickResult(claimed=[c[0] for c in claimed], skipped_blocked=blocked, batches=batch_count,
                      caught_up=caught_up), len(due)


def _catch_up(coordination: Coordination, queue: TaskQueue, stalled: list[tuple[int, float]]) -> list[int]:
    """Step 6: a drift repair for each stalled bridge tenant not caught up within CATCH_UP_EVERY_S (after
    an outage that is every bridge tenant: their notes are taken in one Redis round trip)."""
    overdue = dict(stalled)
    queued = []
    for tenant_id in coordination.note_first(list(overdue), _CATCH_UP_NOTE, CATCH_UP_EVERY_S):
        log.warning("tenant %s: not polled for %.0f s (broker, beat or workers were down); reading its "
                    "STARFACE states again, as bridge events of that time may be lost", tenant_id,
                    overdue[tenant_id])
        try:
            queue.drift_repair(tenant_id)
        except QueueUnavailable as exc:  # the next tick finds the tenant stalled again only if still down
            coordination.drop_note(tenant_id, _CATCH_UP_NOTE)
            log.error("tenant %s: catch-up repair not queued (%s); the periodic drift repair covers it",
                      tenant_id, exc)
            continue
        queued.append(tenant_id)
    return queued
