"""The per-tenant Graph budget and throttle blocks in real Redis, shared by any number of workers."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from connectors.starface import WebhookReplayed
from scheduler.tick import effective_interval_s
from sync.coordination import (
    EVENT_DONE,
    EVENT_ECHO,
    EVENT_NEW,
    EVENT_PENDING,
    PENDING_EVENT_ID_TTL_S,
    BudgetShape,
    EventIdPending,
    LocalCoordination,
    RedisCoordination,
    TenantEventIds,
)


def test_it_keeps_many_workers_together_within_the_tenants_budget(redis_client: redis.Redis) -> None:
    shape = BudgetShape.for_limit(limit=100, window_s=30.0)  # capacity 20, refill 2.67/s
    workers = [RedisCoordination(redis_client, shape) for _ in range(8)]
    granted: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(len(workers))

    def hammer(coordination: RedisCoordination) -> None:
        start.wait()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if coordination.take(tenant_id=1) == 0.0:
                with lock:
                    granted.append(time.monotonic())

    threads = [threading.Thread(target=hammer, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Capacity plus what refilled in 1.5 s, never more, however many workers asked.
    assert 20 <= len(granted) <= 20 + 1.6 * shape.refill_per_s + 1
    assert workers[0].take(tenant_id=2) == 0.0  # another tenant has its own budget


def test_it_blocks_a_throttled_tenant_for_a_fractional_retry_after(redis_client: redis.Redis) -> None:
    coordination = RedisCoordination(redis_client)
    coordination.block(7, 0.35)
    remaining = coordination.blocked_for(7)
    assert 0.2 < remaining <= 0.35
    assert coordination.blocked_for(8) == 0.0  # other tenants are not blocked
    deadline = time.monotonic() + 2
    while coordination.blocked_for(7) > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert coordination.blocked_for(7) == 0.0


def test_it_forgets_a_webhook_event_id_only_when_told(redis_client: redis.Redis) -> None:
    coordination = RedisCoordination(redis_client)
    assert coordination.add_event_id_if_new(1, "e-1")
    assert not coordination.add_event_id_if_new(1, "e-1")
    assert coordination.add_event_id_if_new(2, "e-1")  # ids never cross tenants
    coordination.discard_event_id(1, "e-1")
    assert coordination.add_event_id_if_new(1, "e-1")


def test_a_webhook_event_id_is_pending_briefly_and_kept_an_hour_once_confirmed(
    redis_client: redis.Redis,
) -> None:
    """Recorded ids lapse after PENDING_EVENT_ID_TTL_S unless confirmed: one that Redis failed to take back
    does not turn the bridge's retries into "duplicates" for an hour."""
    coordination = RedisCoordination(redis_client)
    assert coordination.add_event_id_if_new(1, "e-1")
    key = next(redis_client.scan_iter(match="*event:e-1"))
    assert coordination.event_id_state(1, "e-1") == EVENT_PENDING
    assert 0 < redis_client.ttl(key) <= PENDING_EVENT_ID_TTL_S
    coordination.confirm_event_id(1, "e-1")
    assert coordination.event_id_state(1, "e-1") == EVENT_DONE
    assert redis_client.ttl(key) > PENDING_EVENT_ID_TTL_S
    coordination.confirm_event_id(1, "e-2")  # never recorded: nothing is created
    assert coordination.event_id_state(1, "e-2") is None

    ids = TenantEventIds(coordination, 1)
    assert ids.add_if_new("e-3")
    with pytest.raises(EventIdPending):
        ids.add_if_new("e-3")  # a second delivery while the first is being queued
    redis_client.set(key.decode().replace("e-1", "e-4"), "1")  # recorded by a version before "pending"
    assert not ids.add_if_new("e-4")  # a replay, as it was then


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_admitting_an_event_id_drops_its_echo_note_in_the_same_step(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The receiver's one round trip: a new id with its echo's note is done at once and the note gone (one
    note answers one event); without the note the id is pending as before; a recorded id is never
    recorded again, and its note stays for the real echo."""
    coordination = (LocalCoordination() if kind == "local"
                    else RedisCoordination(request.getfixturevalue("redis_client")))
    coordination.note_many(1, ["own:17:dnd:on"], 60)
    assert coordination.admit_event_id(1, "e-1", "own:17:dnd:on") == EVENT_ECHO
    assert coordination.event_id_state(1, "e-1") == EVENT_DONE
    assert coordination.admit_event_id(1, "e-2", "own:17:dnd:on") == EVENT_NEW  # the note answered e-1
    assert coordination.event_id_state(1, "e-2") == EVENT_PENDING
    assert coordination.admit_event_id(1, "e-3", None) == EVENT_NEW

    coordination.note_many(1, ["own:17:dnd:off"], 60)
    assert coordination.admit_event_id(1, "e-2", "own:17:dnd:off") == EVENT_PENDING  # being queued
    assert coordination.admit_event_id(1, "e-1", "own:17:dnd:off") == EVENT_DONE  # a replay
    assert coordination.admit_event_id(2, "e-4", "own:17:dnd:off") == EVENT_NEW  # notes never cross tenants
    assert coordination.drop_notes(1, ["own:17:dnd:off"]) == 1  # still there

    ids = TenantEventIds(coordination, 1)
    with pytest.raises(WebhookReplayed):
        ids.admit("e-1", None)
    with pytest.raises(EventIdPending):
        ids.admit("e-3", None)
    coordination.note_many(1, ["own:17:chat:x"], 60)
    assert ids.admit("e-5", "own:17:chat:x") is True
    assert ids.admit("e-6", "own:17:chat:x") is False


def test_it_notes_a_fact_only_for_the_tenants_that_lack_it(redis_client: redis.Redis) -> None:
    coordination = RedisCoordination(redis_client)
    coordination.note(2, "catch-up", "1", 60)
    assert coordination.note_first([1, 2, 3], "catch-up", 60) == [1, 3]
    assert coordination.note_first([1, 2, 3], "catch-up", 60) == []
    assert coordination.note_first([1], "other", 60) == [1]  # per name


def test_it_stretches_the_cadence_only_as_far_as_the_budget_requires() -> None:
    shape = BudgetShape.for_limit()  # 40 requests/s steady
    assert effective_interval_s(2.0, 10_000, shape) == 2.0  # 16 requests per cycle fit easily
    assert effective_interval_s(2.0, 100_000, shape) == 154 / 40  # 154 batches need 3.85 s


def test_it_queues_one_update_per_user_until_it_has_run(redis_client: redis.Redis) -> None:
    coordination = RedisCoordination(redis_client)
    assert coordination.mark_pending(1, [10, 11], ttl_s=60) == [10, 11]
    assert coordination.mark_pending(1, [10, 11, 12], ttl_s=60) == [12]  # 10 and 11 still wait
    assert coordination.mark_pending(2, [10], ttl_s=60) == [10]  # per tenant
    coordination.clear_pending(1, 10)
    assert coordination.mark_pending(1, [10, 11], ttl_s=60) == [10]
    coordination.clear_pending(1, 10, 11, 12)  # a batch's users in one round trip
    coordination.clear_pending(1)  # none: nothing to do
    assert coordination.mark_pending(1, [10, 11, 12], ttl_s=60) == [10, 11, 12]
    assert coordination.mark_pending(2, [10], ttl_s=60) == []  # the other tenant's mark stays


def test_a_packed_poll_admits_its_tenants_in_one_round_trip_each_as_alone(redis_client: redis.Redis) -> None:
    shape = BudgetShape.for_limit(limit=15, window_s=30.0)  # capacity 3
    coordination = RedisCoordination(redis_client, shape)
    coordination.block(2, 30.0)
    assert coordination.blocked_for_many([1, 2, 3]) == [0.0, pytest.approx(30.0, abs=1.0), 0.0]
    for _ in range(3):
        coordination.take(3)  # tenant 3 has used its budget
    waits = coordination.take_many([1, 3])
    assert waits[0] == 0.0 and waits[1] > 0  # granted to 1, refused to 3 with the time to wait
    assert coordination.take_many([1, 1]) == [0.0, 0.0]  # each take atomic: 3 of capacity 3, no more
    assert coordination.take(1) > 0
