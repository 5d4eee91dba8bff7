"""The tick: each due tenant claimed once, its linked users split into <=650-id batches, users read in
one query for all due tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from models.crypto import SecretBox
from scheduler import tick
from scheduler.tick import run_tick
from sync.coordination import LocalCoordination
from sync.ports import CollectingQueue
from tests.support.factories import make_tenant, make_user_links
from tests.support.query_counter import count_queries

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_it_claims_each_due_tenant_once_and_batches_its_users(
    pg_sessions: sessionmaker[Session], postgres_engine: Engine, box: SecretBox
) -> None:
    with pg_sessions.begin() as session:
        for n, users in enumerate((700, 3, 0)):
            tenant = make_tenant(session, box, name=f"t{n}", next_poll_at=NOW - timedelta(seconds=1))
            make_user_links(session, tenant, users, first_account=1000 * n)
        make_tenant(session, box, name="later", next_poll_at=NOW + timedelta(seconds=5))
    queue = CollectingQueue()
    coordination = LocalCoordination()
    with count_queries(postgres_engine) as queries:
        result = run_tick(pg_sessions, coordination, queue, NOW)
    polls = [(tenant_id, len(batch)) for tenant_id, batch, *_ in queue.polls]
    assert sorted(polls) == [(1, 50), (1, 650), (2, 3)]  # 700 users -> two batches; no users -> no poll
    assert sorted(result.claimed) == [1, 2, 3]
    # due tenants + their users (one query for all) + ONE conditional update claiming them all
    assert queries.count == 2 + 1
    again = run_tick(pg_sessions, coordination, queue, NOW)
    assert again.claimed == [] and len(queue.polls) == 3  # claimed until the next interval


def test_it_polls_small_tenants_together_in_tasks_of_at_most_pack_users(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    small = tick.PACK_USERS // 25 + 8  # tenants of 25 users: one full task and 200 users in a second
    with pg_sessions.begin() as session:
        for n in range(small):
            tenant = make_tenant(session, box, name=f"small{n}", next_poll_at=NOW - timedelta(seconds=1))
            make_user_links(session, tenant, 25, first_account=1000 * n)
        big = make_tenant(session, box, name="big", next_poll_at=NOW - timedelta(seconds=1))
        make_user_links(session, big, 700, first_account=900_000)
    queue = CollectingQueue()
    result = run_tick(pg_sessions, LocalCoordination(), queue, NOW)
    assert len(result.claimed) == small + 1
    assert [sum(len(batch) for _, batch in task) for task in queue.poll_tasks] == [tick.PACK_USERS, 200]
    assert all(len(task) <= tick.PACK_TENANTS for task in queue.poll_tasks)
    polled = sorted(tenant_id for task in queue.poll_tasks for tenant_id, _ in task)
    assert polled == sorted(set(result.claimed) - {big.id})  # every small tenant exactly once
    # a large tenant's batches stay within Graph's 650 ids a request
    assert sorted(len(batch) for tenant_id, batch, *_ in queue.polls if tenant_id == big.id) == [50, 650]


def test_it_claims_chunk_after_chunk_until_no_tenant_is_due(
    pg_sessions: sessionmaker[Session], box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tick, "CLAIM_CHUNK", 3)
    with pg_sessions.begin() as session:
        for n in range(7):
            tenant = make_tenant(session, box, name=f"t{n}", next_poll_at=NOW - timedelta(seconds=1))
            make_user_links(session, tenant, 2, first_account=1000 * n)
    queue = CollectingQueue()
    result = run_tick(pg_sessions, LocalCoordination(), queue, NOW)
    assert len(result.claimed) == 7 == len(set(result.claimed))
    assert run_tick(pg_sessions, LocalCoordination(), queue, NOW).claimed == []


class _CountingCoordination(LocalCoordination):
    """Counts how often the tick asks for throttle blocks (each call is a Redis round trip in production)."""

    def __init__(self) -> None:
        super().__init__()
        self.block_reads = 0

    def blocked_for(self, tenant_id: int) -> float:
        self.block_reads += 1
        return super().blocked_for(tenant_id)

    def blocked_for_many(self, tenant_ids: list[int]) -> list[float]:
        self.block_reads += 1
        return [super(_CountingCoordination, self).blocked_for(tenant_id) for tenant_id in tenant_ids]


def test_it_reads_a_chunks_throttle_blocks_at_once_and_leaves_blocked_tenants_unpolled(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with pg_sessions.begin() as session:
        ids = []
        for n in range(5):
            tenant = make_tenant(session, box, name=f"t{n}", next_poll_at=NOW - timedelta(seconds=1))
            make_user_links(session, tenant, 2, first_account=1000 * n)
            ids.append(tenant.id)
    coordination = _CountingCoordination()
    coordination.block(ids[2], 30.0)
    queue = CollectingQueue()
    result = run_tick(pg_sessions, coordination, queue, NOW)
    assert result.skipped_blocked == [ids[2]]
    assert sorted(tenant_id for tenant_id, *_ in queue.polls) == sorted(set(ids) - {ids[2]})
    assert coordination.block_reads == 1  # one chunk: one read for all five tenants


def test_a_bridge_tenant_claimed_long_after_it_was_due_gets_one_catch_up_repair(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    """Bridge events may be lost while the broker is down; the first tick after such a stall re-reads the
    PBX (a drift repair) - once per CATCH_UP_EVERY_S, and only for tenants with a bridge."""
    stalled_at = NOW - timedelta(seconds=tick.CATCH_UP_AFTER_S + 7)
    with pg_sessions.begin() as session:
        stalled = make_tenant(session, box, name="stalled", next_poll_at=stalled_at)
        on_time = make_tenant(session, box, name="on-time", next_poll_at=NOW - timedelta(seconds=1))
        rest_only = make_tenant(session, box, name="rest-only", bridge=False, next_poll_at=stalled_at)
        for n, tenant in enumerate((stalled, on_time, rest_only)):
            make_user_links(session, tenant, 3, first_account=1000 * n)
    coordination = LocalCoordination()
    queue = CollectingQueue()
    result = run_tick(pg_sessions, coordination, queue, NOW)
    assert sorted(result.claimed) == sorted([stalled.id, on_time.id, rest_only.id])
    assert result.caught_up == [stalled.id]
    assert queue.maintenance == [("drift_repair", stalled.id)]

    later = NOW + timedelta(seconds=60)  # stalled again within CATCH_UP_EVERY_S: polled, not repaired again
    with pg_sessions.begin() as session:
        session.get(Tenant, stalled.id).next_poll_at = later - timedelta(seconds=tick.CATCH_UP_AFTER_S + 7)
    again = run_tick(pg_sessions, coordination, queue, later)
    assert stalled.id in again.claimed and stalled.id not in again.caught_up
    assert queue.maintenance.count(("drift_repair", stalled.id)) == 1
