"""One user's requests pass the PBX's gate as a lane: each request's slot is handed to the next in one round
trip to the shared store, never more requests in flight than slots, and trouble gives the slot back at once.
Run against the in-process coordination and against real Redis (the script the workers share)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from sync.coordination import LocalCoordination, PbxBusy, PbxGate, PbxLimits, RedisCoordination

LIMITS = PbxLimits(max_in_flight=2, max_per_s=1000.0)


class _Counted:
    """The real coordination, counting the gate's calls to it (each is one round trip with Redis)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return counted


class _NoSlot(Exception):
    """Raised instead of waiting: the gate would have waited for a slot."""


def _refuse_to_wait(_seconds: float) -> None:
    raise _NoSlot


@pytest.fixture(params=["local", "redis"])
def coordination(request: pytest.FixtureRequest) -> Any:
    if request.param == "local":
        return LocalCoordination()
    client: redis.Redis = request.getfixturevalue("redis_client")
    return RedisCoordination(client)


def _free_slots(coordination: Any, tag: str) -> int:
    """How many slots another worker could take now (taken and given back again)."""
    taken = [f"{tag}{i}" for i in range(LIMITS.max_in_flight)
             if coordination.pbx_acquire("pbx", LIMITS, f"{tag}{i}") == 0.0]
    for holder in taken:
        coordination.pbx_release("pbx", holder)
    return len(taken)


def test_a_lane_hands_its_slot_from_request_to_request(coordination: Any) -> None:
    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", LIMITS, sleep=_refuse_to_wait)
    with gate.lane() as lane:
        with lane.request():
            pass
        assert _free_slots(coordination, "a") == 1  # the lane holds one between its requests
        assert coordination.pbx_acquire("pbx", LIMITS, "other") == 0.0  # now every slot is taken
        for _ in range(3):  # yet the lane goes on: its next acquire gives its own slot back first
            with lane.request():
                pass
        coordination.pbx_release("pbx", "other")
    assert _free_slots(coordination, "b") == 2  # closing the lane gave its slot back
    assert counted.calls == ["pbx_take"] * 4 + ["pbx_release"]  # 5 round trips for 4 requests, not 8


def test_lone_requests_take_and_give_back_a_slot_each(coordination: Any) -> None:
    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", LIMITS, sleep=_refuse_to_wait)
    for _ in range(2):
        with gate.request():
            pass
    assert counted.calls == ["pbx_take", "pbx_release"] * 2
    assert _free_slots(coordination, "a") == 2


def test_a_full_pbx_makes_a_lane_wait_for_its_first_slot(coordination: Any) -> None:
    gate = PbxGate(coordination, "pbx", LIMITS, sleep=_refuse_to_wait)
    for holder in ("x", "y"):
        assert coordination.pbx_acquire("pbx", LIMITS, holder) == 0.0
    with pytest.raises(_NoSlot), gate.lane() as lane, lane.request():
        pass  # pragma: no cover - never sent


def test_a_failing_request_in_a_lane_gives_its_slot_back_with_the_penalty(coordination: Any) -> None:
    class Transient(Exception):
        permanent = False

    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", LIMITS, sleep=_refuse_to_wait)
    with pytest.raises(Transient), gate.lane() as lane:
        with lane.request():
            pass
        with lane.request():
            raise Transient
    assert counted.calls == ["pbx_take", "pbx_take", "pbx_release", "pbx_penalize"]
    assert _free_slots(coordination, "a") == 1  # penalized: half the slots


def test_a_slow_answer_in_a_lane_gives_its_slot_back_with_the_penalty(coordination: Any) -> None:
    now = [0.0]
    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", LIMITS, sleep=_refuse_to_wait, clock=lambda: now[0])
    with gate.lane() as lane, lane.request():
        now[0] += LIMITS.slow_s + 0.5
    assert counted.calls == ["pbx_take", "pbx_release", "pbx_penalize"]


def test_a_slow_bulk_read_is_not_penalized_but_a_failing_one_is(coordination: Any) -> None:
    """Reading all users or all groups takes longer the bigger the PBX: its time says nothing of load."""
    class Transient(Exception):
        permanent = False

    now = [0.0]
    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", LIMITS, sleep=_refuse_to_wait, clock=lambda: now[0])
    with gate.request(bulk=True):
        now[0] += LIMITS.slow_s + 10
    assert counted.calls == ["pbx_take", "pbx_release"]
    assert _free_slots(coordination, "a") == 2
    with pytest.raises(Transient), gate.request(bulk=True):
        raise Transient
    assert counted.calls[2:] == ["pbx_take", "pbx_release", "pbx_penalize"]


def test_a_lane_sends_nothing_after_its_deadline_and_gives_its_slot_back(coordination: Any) -> None:
    now = [0.0]
    gate = PbxGate(coordination, "pbx", LIMITS, sleep=_refuse_to_wait, clock=lambda: now[0])
    sent = 0
    with pytest.raises(PbxBusy), gate.lane(deadline=10.0) as lane:
        with lane.request():
            sent += 1
        now[0] = 10.0  # the deadline passes while the lane holds its slot
        with lane.request():
            sent += 1  # pragma: no cover - never sent
    assert sent == 1
    assert _free_slots(coordination, "a") == 2  # the held slot went back with the refusal


def _held_slots(coordination: Any) -> int:
    """Slots of the PBX held now, as the shared store counts them."""
    if isinstance(coordination, LocalCoordination):
        return len(coordination._pbx_holders.get("pbx", set()))
    return int(coordination._redis.zcard("teamsconnect:pbx:pbx:slots"))


def test_a_lane_expecting_three_requests_sends_them_on_one_slot_with_two_round_trips(
    coordination: Any,
) -> None:
    """The first slot pays for the lane's expected requests as far as the bucket holds them; the next
    ones go out on that slot without a round trip, and closing gives the slot back."""
    limits = PbxLimits(max_in_flight=2, max_per_s=20.0)  # a bucket of 5 requests
    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", limits, sleep=_refuse_to_wait)
    with gate.lane(requests=3) as lane:
        for _ in range(3):
            with lane.request():
                assert _held_slots(coordination) == 1  # one slot throughout, never two
    assert counted.calls == ["pbx_take", "pbx_release"]
    assert _held_slots(coordination) == 0


def test_the_bucket_pays_no_more_than_it_holds_and_takes_back_what_was_not_sent() -> None:
    """Exact accounting on the in-process store with a still clock: 5 requests in the bucket."""
    coordination = LocalCoordination(clock=lambda: 0.0)
    limits = PbxLimits(max_in_flight=2, max_per_s=20.0)
    gate = PbxGate(coordination, "pbx", limits, sleep=_refuse_to_wait, clock=lambda: 0.0)
    with gate.lane(requests=3) as lane:
        for _ in range(3):
            with lane.request():
                pass
    with gate.lane(requests=3) as lane, lane.request():
        pass  # only the read: the bucket held 2, so 2 were paid for, and the one not sent comes back
    assert coordination.pbx_take("pbx", limits, "probe", None, 5) == (0.0, 1)  # 5 - 3 - 2 + 1
    coordination.pbx_release("pbx", "probe")
    with pytest.raises(_NoSlot), gate.lane(requests=3) as lane, lane.request():
        pass  # pragma: no cover - the bucket is empty: it would wait


def test_the_shared_store_pays_for_several_requests_and_takes_the_unsent_back(redis_client: Any) -> None:
    coordination = RedisCoordination(redis_client)
    limits = PbxLimits(max_in_flight=2, max_per_s=12.0)  # a bucket of 3, refilled one per 83 ms
    assert coordination.pbx_take("pbx", limits, "a", None, 5) == (0.0, 3)  # no more than the bucket holds
    coordination.pbx_release("pbx", "a", limits, refund=2)
    wait, paid = coordination.pbx_take("pbx", limits, "b", None, 3)
    assert wait == 0.0 and paid >= 2  # without the refund the bucket would be (nearly) empty


def test_a_failing_request_of_a_paid_lane_gives_its_slot_back_at_once_with_the_penalty(
    coordination: Any,
) -> None:
    class Transient(Exception):
        permanent = False

    limits = PbxLimits(max_in_flight=2, max_per_s=20.0)
    counted = _Counted(coordination)
    gate = PbxGate(counted, "pbx", limits, sleep=_refuse_to_wait)
    with pytest.raises(Transient), gate.lane(requests=3) as lane, lane.request():
        raise Transient
    assert counted.calls == ["pbx_take", "pbx_release", "pbx_penalize"]
    assert _held_slots(coordination) == 0
