"""What workers share about tenants through Redis: the Graph budget, throttle blocks, webhook event ids
and which users already have a STARFACE update queued.

Graph allows about 1,500 presence requests per 30 s per app per tenant (graph-api.md section 4). A token
bucket per tenant, kept in Redis and updated atomically by a Lua script on Redis' own clock, lets any
number of workers together stay under it: refill ``0.8 * limit / window`` per second, capacity
``0.2 * limit``, so that no 30 s window can see more than ``limit`` requests.

A 429 blocks the tenant until its Retry-After has passed: a key with that TTL (milliseconds, so
fractional Retry-After values are honoured); no task calls Graph for the tenant while it exists.

An update task queued for a user is marked until it has run (or its expiry has passed), so a poll two
seconds later does not queue the same update again while the first waits in a long queue.

``LocalCoordination`` is the same for one process (embedded mode, the demo), without Redis.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from connectors.starface import WebhookReplayed

PRESENCE_LIMIT = 1500
PRESENCE_WINDOW_S = 30.0
log = logging.getLogger(__name__)
KEY_PREFIX = "teamsconnect"
EVENT_ID_TTL_S = 3600
#: An event id is first recorded as pending, for this long only, and kept as done for EVENT_ID_TTL_S once its
#: event is queued. A delivery of a pending id is answered "retry later" (the first may still fail), and if
#: Redis fails between recording the id and queueing the event (so the id cannot be taken back), the id
#: lapses after this time and the bridge's retry is accepted instead of being answered as a replay.
PENDING_EVENT_ID_TTL_S = 30
EVENT_PENDING = "pending"
EVENT_DONE = "done"


@dataclass(frozen=True)
class BudgetShape:
    """Token-bucket parameters derived from Graph's limit."""

    capacity: float
    refill_per_s: float

    @classmethod
    def for_limit(cls, limit: int = PRESENCE_LIMIT, window_s: float = PRESENCE_WINDOW_S) -> BudgetShape:
        return cls(capacity=0.2 * limit, refill_per_s=0.8 * limit / window_s)

    def min_interval_s(self, requests_per_cycle: int) -> float:
        """The shortest poll interval that keeps ``requests_per_cycle`` within the steady refill rate."""
        return requests_per_cycle / self.refill_per_s


class Coordination(Protocol):
    """What workers share about tenants: throttle blocks, the Graph budget, seen webhook event ids."""

    def block(self, tenant_id: int, seconds: float) -> None: ...
    def blocked_for(self, tenant_id: int) -> float: ...
    def take(self, tenant_id: int, cost: int = 1) -> float: ...
    def blocked_for_many(self, tenant_ids: list[int]) -> list[float]: ...
    def take_many(self, tenant_ids: list[int]) -> list[float]: ...
    def add_event_id_if_new(self, tenant_id: int, event_id: str) -> bool: ...
    def admit_event_id(self, tenant_id: int, event_id: str, echo_note: str | None) -> str: ...
    def discard_event_id(self, tenant_id: int, event_id: str) -> None: ...
    def confirm_event_id(self, tenant_id: int, event_id: str) -> None: ...
    def event_id_state(self, tenant_id: int, event_id: str) -> str | None: ...
    def mark_pending(self, tenant_id: int, user_link_ids: list[int], ttl_s: float) -> list[int]: ...
    def any_pending(self) -> bool: ...
    def clear_pending(self, tenant_id: int, *user_link_ids: int) -> None: ...
    def note(self, tenant_id: int, name: str, value: str, ttl_s: float) -> None: ...
    def read_note(self, tenant_id: int, name: str) -> str | None: ...
    def drop_note(self, tenant_id: int, name: str) -> None: ...
    def note_many(self, tenant_id: int, names: list[str], ttl_s: float) -> None: ...
    def drop_notes(self, tenant_id: int, names: list[str]) -> int: ...
    def note_first(self, tenant_ids: list[int], name: str, ttl_s: float) -> list[int]: ...
    def pbx_acquire(self, pbx: str, limits: PbxLimits, holder: str, release: str | None = None) -> float: ...
    def pbx_take(self, pbx: str, limits: PbxLimits, holder: str, release: str | None,
                 requests: int) -> tuple[float, int]: ...
    def pbx_release(self, pbx: str, holder: str, limits: PbxLimits | None = None,
                    refund: int = 0) -> None: ...
    def pbx_penalize(self, pbx: str, limits: PbxLimits) -> None: ...
    def ping(self) -> None:
        """Raises if the shared store does not answer (readiness check)."""
        ...


#: Why a tenant may not send Graph a request now, and for how many seconds: ("throttled" | "budget", s).
Refusal = tuple[str, float]


def admit(coordination: Coordination, tenant_ids: list[int]) -> list[Refusal | None]:
    """Per tenant: None when it may send Graph one request now (taken from its budget), else why not -
    Microsoft's Retry-After first (honoured for the whole tenant before any new request, design.md), then
    the budget. Two round trips for any number of tenants (a packed poll's, or one dry run's)."""
    refused: list[Refusal | None] = [("throttled", blocked_s) if blocked_s > 0 else None
                                     for blocked_s in coordination.blocked_for_many(tenant_ids)]
    free = [index for index, refusal in enumerate(refused) if refusal is None]
    for index, wait_s in zip(free, coordination.take_many([tenant_ids[i] for i in free]), strict=True):
        if wait_s > 0:
            refused[index] = ("budget", wait_s)
    return refused


@dataclass(frozen=True)
class PbxLimits:
    """How hard we may drive one STARFACE: requests in flight and per second, shared by every worker.

    The defaults suit a small appliance. A PBX that answers 5xx, times out or answers slower than
    ``slow_s`` is penalized: its allowance (both figures) halves, at most once per ``recover_s``, down to
    one request in flight; it grows back by one step every ``recover_s`` without a penalty.
    """

    max_in_flight: int = 4
    max_per_s: float = 20.0
    lease_s: float = 30.0
    slow_s: float = 2.0
    recover_s: float = 5.0


_PBX_ACQUIRE_SCRIPT = """
local max_in_flight = tonumber(ARGV[1])
local rate_max = tonumber(ARGV[2])
local holder = ARGV[3]
local lease = tonumber(ARGV[4])
local recover = tonumber(ARGV[5])
local release = ARGV[6]
local requests = tonumber(ARGV[7]) or 1
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if release and release ~= '' then
  redis.call('ZREM', KEYS[1], release)
end
local state = redis.call('HMGET', KEYS[2], 'tokens', 'ts', 'cap', 'penalized')
local cap = tonumber(state[3]) or max_in_flight
local penalized = tonumber(state[4]) or now
if cap < max_in_flight then
  local steps = math.floor((now - penalized) / recover)
  if steps > 0 then
    cap = math.min(max_in_flight, cap + steps)
    penalized = penalized + steps * recover
  end
end
local rate = rate_max * cap / max_in_flight
local burst = math.max(1, rate / 4)
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
local taken = 0
if redis.call('ZCARD', KEYS[1]) >= cap then
  wait = -1
elseif tokens < 1 then
  wait = (1 - tokens) / rate
else
  taken = math.min(requests, math.floor(tokens))
  tokens = tokens - taken
  redis.call('ZADD', KEYS[1], now + lease, holder)
end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'ts', tostring(now), 'cap', tostring(cap),
           'penalized', tostring(penalized))
redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 60)
redis.call('EXPIRE', KEYS[2], 3600)
return {tostring(wait), taken}
"""

_PBX_REFUND_SCRIPT = """
local max_in_flight = tonumber(ARGV[1])
local rate_max = tonumber(ARGV[2])
local refund = tonumber(ARGV[4])
redis.call('ZREM', KEYS[1], ARGV[3])
local state = redis.call('HMGET', KEYS[2], 'tokens', 'cap')
if state[1] then
  local cap = tonumber(state[2]) or max_in_flight
  local burst = math.max(1, rate_max * cap / max_in_flight / 4)
  redis.call('HSET', KEYS[2], 'tokens', tostring(math.min(burst, tonumber(state[1]) + refund)))
end
return 1
"""

_PBX_PENALIZE_SCRIPT = """
local max_in_flight = tonumber(ARGV[1])
local recover = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'cap', 'penalized')
local cap = tonumber(state[1]) or max_in_flight
local penalized = tonumber(state[2])
if cap < max_in_flight and penalized and now - penalized < recover then
  return tostring(cap)
end
cap = math.max(1, math.floor(cap / 2))
redis.call('HSET', KEYS[1], 'cap', tostring(cap), 'penalized', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(cap)
"""


_ADMIT_EVENT_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[3])) then
  if #KEYS > 1 and redis.call('DEL', KEYS[2]) == 1 then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[4]))
    return 'echo'
  end
  return 'new'
end
return redis.call('GET', KEYS[1]) or ARGV[1]
"""

#: What ``admit_event_id`` answers besides the state of an id recorded before (EVENT_PENDING, EVENT_DONE).
EVENT_NEW = "new"
EVENT_ECHO = "echo"


_TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""


class RedisCoordination:
    """Coordination through Redis, for many workers on many hosts."""

    def __init__(self, client: redis.Redis, shape: BudgetShape | None = None) -> None:
        self._redis = client
        self._shape = shape or BudgetShape.for_limit()
        self._take = client.register_script(_TAKE_SCRIPT)
        self._pbx_acquire = client.register_script(_PBX_ACQUIRE_SCRIPT)
        self._pbx_penalize = client.register_script(_PBX_PENALIZE_SCRIPT)
        self._pbx_refund = client.register_script(_PBX_REFUND_SCRIPT)
        self._admit_event = client.register_script(_ADMIT_EVENT_SCRIPT)

    @staticmethod
    def _key(tenant_id: int | str, what: str) -> str:
        return f"{KEY_PREFIX}:tenant:{tenant_id}:{what}"

    def block(self, tenant_id: int, seconds: float) -> None:
        """Blocks the tenant's Graph calls for ``seconds`` (Retry-After; fractions kept as milliseconds)."""
        self._redis.set(self._key(tenant_id, "throttled"), "1", px=max(1, math.ceil(seconds * 1000)))

    def blocked_for(self, tenant_id: int) -> float:
        """Seconds left of the tenant's throttle block; 0.0 when it may call Graph."""
        remaining_ms = self._redis.pttl(self._key(tenant_id, "throttled"))
        return remaining_ms / 1000.0 if remaining_ms and remaining_ms > 0 else 0.0

    def take(self, tenant_id: int, cost: int = 1) -> float:
        """Takes ``cost`` requests from the tenant's budget: 0.0 if granted, else the seconds to wait."""
        wait = self._take(
            keys=[self._key(tenant_id, "budget")],
            args=[self._shape.capacity, self._shape.refill_per_s, cost],
        )
        return float(wait)

    def blocked_for_many(self, tenant_ids: list[int]) -> list[float]:
        """``blocked_for`` of several tenants (a packed poll) in one round trip."""
        pipeline = self._redis.pipeline(transaction=False)
        for tenant_id in tenant_ids:
            pipeline.pttl(self._key(tenant_id, "throttled"))
        return [remaining_ms / 1000.0 if remaining_ms and remaining_ms > 0 else 0.0
                for remaining_ms in pipeline.execute()]

    def take_many(self, tenant_ids: list[int]) -> list[float]:
        """``take`` of one request from each tenant's budget in one round trip (each atomic on its own)."""
        pipeline = self._redis.pipeline(transaction=False)
        for tenant_id in tenant_ids:
            self._take(keys=[self._key(tenant_id, "budget")],
                       args=[self._shape.capacity, self._shape.refill_per_s, 1], client=pipeline)
        return [float(wait) for wait in pipeline.execute()]

    def add_event_id_if_new(self, tenant_id: int, event_id: str) -> bool:
        """Records a webhook event id (for PENDING_EVENT_ID_TTL_S until confirmed); False when the tenant's
        bridge delivered it before."""
        key = self._key(tenant_id, f"event:{event_id}")
        return bool(self._redis.set(key, EVENT_PENDING, nx=True, ex=PENDING_EVENT_ID_TTL_S))

    def admit_event_id(self, tenant_id: int, event_id: str, echo_note: str | None) -> str:
        """``add_event_id_if_new`` and, for a new id, ``drop_notes([echo_note])`` with the id confirmed if
        the note was there, in ONE round trip (a burst's echo events cost three before): EVENT_NEW (recorded
        as pending), EVENT_ECHO (the note was dropped, the id is done), or the state of the id recorded
        before (EVENT_PENDING, EVENT_DONE)."""
        keys = [self._key(tenant_id, f"event:{event_id}")]
        if echo_note is not None:
            keys.append(self._key(tenant_id, f"note:{echo_note}"))
        answer = self._admit_event(keys=keys, args=[EVENT_PENDING, EVENT_DONE, PENDING_EVENT_ID_TTL_S,
                                                    EVENT_ID_TTL_S])
        return answer.decode("utf-8") if isinstance(answer, bytes) else str(answer)

    def confirm_event_id(self, tenant_id: int, event_id: str) -> None:
        """Keeps a recorded id as done for EVENT_ID_TTL_S: its event was queued (or needs no work)."""
        self._redis.set(self._key(tenant_id, f"event:{event_id}"), EVENT_DONE, xx=True, ex=EVENT_ID_TTL_S)

    def event_id_state(self, tenant_id: int, event_id: str) -> str | None:
        """EVENT_PENDING, EVENT_DONE, or None when the id is not recorded (any more)."""
        value = self._redis.get(self._key(tenant_id, f"event:{event_id}"))
        return None if value is None else value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def discard_event_id(self, tenant_id: int, event_id: str) -> None:
        """Forgets an event id whose processing could not be queued, so the bridge's retry is accepted."""
        self._redis.delete(self._key(tenant_id, f"event:{event_id}"))

    def any_pending(self) -> bool:
        """Whether any user of any tenant has an update queued (a test waiting for the pipeline to settle)."""
        return next(self._redis.scan_iter(match=self._key("*", "pending:*"), count=1000), None) is not None

    def mark_pending(self, tenant_id: int, user_link_ids: list[int], ttl_s: float) -> list[int]:
        """Marks users whose update is about to be queued; returns those not marked yet (one round trip)."""
        pipeline = self._redis.pipeline(transaction=False)
        for link_id in user_link_ids:
            pipeline.set(self._key(tenant_id, f"pending:{link_id}"), "1", nx=True, px=math.ceil(ttl_s * 1000))
        return [link_id for link_id, fresh in zip(user_link_ids, pipeline.execute(), strict=True) if fresh]

    def clear_pending(self, tenant_id: int, *user_link_ids: int) -> None:
        """The users' updates have run: the next change may queue new ones (one round trip for a batch)."""
        if user_link_ids:
            self._redis.delete(*(self._key(tenant_id, f"pending:{link_id}") for link_id in user_link_ids))

    def note(self, tenant_id: int, name: str, value: str, ttl_s: float) -> None:
        """A short-lived fact about the tenant shared between processes (e.g. a bridge test event arrived)."""
        self._redis.set(self._key(tenant_id, f"note:{name}"), value, px=max(1, math.ceil(ttl_s * 1000)))

    def read_note(self, tenant_id: int, name: str) -> str | None:
        value = self._redis.get(self._key(tenant_id, f"note:{name}"))
        return None if value is None else value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def drop_note(self, tenant_id: int, name: str) -> None:
        self._redis.delete(self._key(tenant_id, f"note:{name}"))

    def note_many(self, tenant_id: int, names: list[str], ttl_s: float) -> None:
        """Notes each of ``names`` (value "1") for ``ttl_s``, in one round trip."""
        pipeline = self._redis.pipeline(transaction=False)
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        for name in names:
            pipeline.set(self._key(tenant_id, f"note:{name}"), "1", px=ttl_ms)
        pipeline.execute()

    def drop_notes(self, tenant_id: int, names: list[str]) -> int:
        """Drops the notes ``names``; returns how many there were (atomic: of two callers dropping the same
        note, one gets it)."""
        return int(self._redis.delete(*(self._key(tenant_id, f"note:{name}") for name in names)))

    def note_first(self, tenant_ids: list[int], name: str, ttl_s: float) -> list[int]:
        """Notes ``name`` for each tenant that has no such note yet; returns those (one round trip)."""
        pipeline = self._redis.pipeline(transaction=False)
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        for tenant_id in tenant_ids:
            pipeline.set(self._key(tenant_id, f"note:{name}"), "1", nx=True, px=ttl_ms)
        return [tenant_id for tenant_id, noted in zip(tenant_ids, pipeline.execute(), strict=True) if noted]

    @staticmethod
    def _pbx_key(pbx: str, what: str) -> str:
        return f"{KEY_PREFIX}:pbx:{pbx}:{what}"

    def pbx_acquire(self, pbx: str, limits: PbxLimits, holder: str, release: str | None = None) -> float:
        """Takes one request slot of the PBX for ``holder``: 0.0 if granted, else seconds to wait (-1.0:
        every slot is taken, wait for a release). ``release``: a slot given back first, granted or not
        (the previous request of a ``PbxLane``), in the same round trip."""
        return self.pbx_take(pbx, limits, holder, release, 1)[0]

    def pbx_take(self, pbx: str, limits: PbxLimits, holder: str, release: str | None,
                 requests: int) -> tuple[float, int]:
        """``pbx_acquire`` that pays for up to ``requests`` requests of the rate at once (a lane's next
        ones): (0.0, requests paid for, at least 1, at most what the bucket holds) if granted, else
        (seconds to wait, 0)."""
        wait, taken = self._pbx_acquire(
            keys=[self._pbx_key(pbx, "slots"), self._pbx_key(pbx, "state")],
            args=[limits.max_in_flight, limits.max_per_s, holder, limits.lease_s, limits.recover_s,
                  release or "", requests],
        )
        return float(wait), int(taken)

    def pbx_release(self, pbx: str, holder: str, limits: PbxLimits | None = None, refund: int = 0) -> None:
        """Gives the slot back; ``refund``: requests paid for and not sent, returned to the rate's bucket
        (needs ``limits``), in the same round trip."""
        if refund > 0 and limits is not None:
            self._pbx_refund(keys=[self._pbx_key(pbx, "slots"), self._pbx_key(pbx, "state")],
                             args=[limits.max_in_flight, limits.max_per_s, holder, refund])
        else:
            self._redis.zrem(self._pbx_key(pbx, "slots"), holder)

    def pbx_penalize(self, pbx: str, limits: PbxLimits) -> None:
        """The PBX answered 5xx, timed out or was slow: halve its allowance (see PbxLimits)."""
        self._pbx_penalize(keys=[self._pbx_key(pbx, "state")], args=[limits.max_in_flight, limits.recover_s])

    def ping(self) -> None:
        self._redis.ping()


class LocalCoordination:
    """The same contract in one process (embedded mode, demo); not shared between processes."""

    def __init__(self, shape: BudgetShape | None = None, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._shape = shape or BudgetShape.for_limit()
        self._clock = clock
        self._lock = threading.Lock()
        self._blocked_until: dict[int, float] = {}
        self._buckets: dict[int, tuple[float, float]] = {}
        self._event_ids: dict[tuple[int, str], tuple[str, float]] = {}
        self._pending: dict[tuple[int, int], float] = {}
        self._notes: dict[tuple[int, str], tuple[str, float]] = {}
        self._pbx: dict[str, dict[str, float]] = {}
        self._pbx_holders: dict[str, set[str]] = {}

    def block(self, tenant_id: int, seconds: float) -> None:
        with self._lock:
            self._blocked_until[tenant_id] = self._clock() + seconds

    def blocked_for(self, tenant_id: int) -> float:
        with self._lock:
            return max(0.0, self._blocked_until.get(tenant_id, 0.0) - self._clock())

    def take(self, tenant_id: int, cost: int = 1) -> float:
        with self._lock:
            now = self._clock()
            tokens, stamp = self._buckets.get(tenant_id, (self._shape.capacity, now))
            tokens = min(self._shape.capacity, tokens + (now - stamp) * self._shape.refill_per_s)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self._shape.refill_per_s
            self._buckets[tenant_id] = (tokens, now)
            return wait

    def blocked_for_many(self, tenant_ids: list[int]) -> list[float]:
        return [self.blocked_for(tenant_id) for tenant_id in tenant_ids]

    def take_many(self, tenant_ids: list[int]) -> list[float]:
        return [self.take(tenant_id) for tenant_id in tenant_ids]

    def add_event_id_if_new(self, tenant_id: int, event_id: str) -> bool:
        with self._lock:
            now = self._clock()
            recorded = self._event_ids.get((tenant_id, event_id))
            if recorded is not None and now < recorded[1]:
                return False
            self._event_ids[(tenant_id, event_id)] = (EVENT_PENDING, now + PENDING_EVENT_ID_TTL_S)
            return True

    def admit_event_id(self, tenant_id: int, event_id: str, echo_note: str | None) -> str:
        with self._lock:
            now = self._clock()
            recorded = self._event_ids.get((tenant_id, event_id))
            if recorded is not None and now < recorded[1]:
                return recorded[0]
            note = self._notes.pop((tenant_id, echo_note), None) if echo_note is not None else None
            if note is not None and note[1] > now:
                self._event_ids[(tenant_id, event_id)] = (EVENT_DONE, now + EVENT_ID_TTL_S)
                return EVENT_ECHO
            self._event_ids[(tenant_id, event_id)] = (EVENT_PENDING, now + PENDING_EVENT_ID_TTL_S)
            return EVENT_NEW

    def confirm_event_id(self, tenant_id: int, event_id: str) -> None:
        with self._lock:
            if (tenant_id, event_id) in self._event_ids:
                self._event_ids[(tenant_id, event_id)] = (EVENT_DONE, self._clock() + EVENT_ID_TTL_S)

    def event_id_state(self, tenant_id: int, event_id: str) -> str | None:
        with self._lock:
            recorded = self._event_ids.get((tenant_id, event_id))
            return recorded[0] if recorded is not None and self._clock() < recorded[1] else None

    def discard_event_id(self, tenant_id: int, event_id: str) -> None:
        with self._lock:
            self._event_ids.pop((tenant_id, event_id), None)

    def mark_pending(self, tenant_id: int, user_link_ids: list[int], ttl_s: float) -> list[int]:
        with self._lock:
            now = self._clock()
            fresh = [i for i in user_link_ids if self._pending.get((tenant_id, i), 0.0) <= now]
            for link_id in fresh:
                self._pending[(tenant_id, link_id)] = now + ttl_s
            return fresh

    def clear_pending(self, tenant_id: int, *user_link_ids: int) -> None:
        with self._lock:
            for link_id in user_link_ids:
                self._pending.pop((tenant_id, link_id), None)

    def any_pending(self) -> bool:
        with self._lock:
            now = self._clock()
            return any(until > now for until in self._pending.values())

    def note(self, tenant_id: int, name: str, value: str, ttl_s: float) -> None:
        with self._lock:
            self._notes[(tenant_id, name)] = (value, self._clock() + ttl_s)

    def read_note(self, tenant_id: int, name: str) -> str | None:
        with self._lock:
            entry = self._notes.get((tenant_id, name))
            if entry is None or entry[1] <= self._clock():
                self._notes.pop((tenant_id, name), None)
                return None
            return entry[0]

    def drop_note(self, tenant_id: int, name: str) -> None:
        with self._lock:
            self._notes.pop((tenant_id, name), None)

    def note_many(self, tenant_id: int, names: list[str], ttl_s: float) -> None:
        for name in names:
            self.note(tenant_id, name, "1", ttl_s)

    def drop_notes(self, tenant_id: int, names: list[str]) -> int:
        with self._lock:
            now = self._clock()
            dropped = [self._notes.pop((tenant_id, name), None) for name in names]
            return sum(1 for entry in dropped if entry is not None and entry[1] > now)

    def note_first(self, tenant_ids: list[int], name: str, ttl_s: float) -> list[int]:
        first = [tenant_id for tenant_id in tenant_ids if self.read_note(tenant_id, name) is None]
        for tenant_id in first:
            self.note(tenant_id, name, "1", ttl_s)
        return first
    def pbx_acquire(self, pbx: str, limits: PbxLimits, holder: str, release: str | None = None) -> float:
        return self.pbx_take(pbx, limits, holder, release, 1)[0]

    def pbx_take(self, pbx: str, limits: PbxLimits, holder: str, release: str | None,
                 requests: int) -> tuple[float, int]:
        with self._lock:
            if release is not None:
                self._pbx_holders.get(pbx, set()).discard(release)
            now = self._clock()
            burst = max(1.0, limits.max_per_s / 4)
            state = self._pbx.setdefault(pbx, {"cap": limits.max_in_flight, "penalized": now, "tokens": burst,
                                               "ts": now})
            holders = self._pbx_holders.setdefault(pbx, set())
            if state["cap"] < limits.max_in_flight:
                steps = math.floor((now - state["penalized"]) / limits.recover_s)
                if steps > 0:
                    state["cap"] = min(limits.max_in_flight, state["cap"] + steps)
                    state["penalized"] += steps * limits.recover_s
            rate = limits.max_per_s * state["cap"] / limits.max_in_flight
            burst = max(1.0, rate / 4)
            state["tokens"] = min(burst, state["tokens"] + (now - state["ts"]) * rate)
            state["ts"] = now
            if len(holders) >= state["cap"]:
                return -1.0, 0
            if state["tokens"] < 1:
                return (1 - state["tokens"]) / rate, 0
            taken = min(requests, math.floor(state["tokens"]))
            state["tokens"] -= taken
            holders.add(holder)
            return 0.0, taken

    def pbx_release(self, pbx: str, holder: str, limits: PbxLimits | None = None, refund: int = 0) -> None:
        with self._lock:
            self._pbx_holders.get(pbx, set()).discard(holder)
            state = self._pbx.get(pbx)
            if refund > 0 and limits is not None and state is not None:
                burst = max(1.0, limits.max_per_s * state["cap"] / limits.max_in_flight / 4)
                state["tokens"] = min(burst, state["tokens"] + refund)

    def pbx_penalize(self, pbx: str, limits: PbxLimits) -> None:
        with self._lock:
            now = self._clock()
            state = self._pbx.setdefault(pbx, {"cap": limits.max_in_flight, "penalized": now, "tokens": 1.0,
                                               "ts": now})
            if state["cap"] < limits.max_in_flight and now - state["penalized"] < limits.recover_s:
                return
            state["cap"] = max(1, state["cap"] // 2)
            state["penalized"] = now

    def ping(self) -> None:
        """In-process: always there."""


class PbxGate:
    """Around every request to one PBX: waits for a slot under its ``PbxLimits`` (shared through the
    coordination by all workers), releases it afterwards, and penalizes the PBX for a 5xx, a timeout or a
    slow answer.

        with gate.request():
            rest.set_dnd(...)
    """

    #: The longest single wait between two attempts to get a slot (a released slot is noticed this fast).
    POLL_S = 0.01

    def __init__(self, coordination: Coordination, pbx: str, limits: PbxLimits,
                 sleep=time.sleep, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._coordination = coordination
        self._pbx = pbx
        self.limits = limits
        self._sleep = sleep
        self._clock = clock
        self.waited_s = 0.0

    def request(self, before_send: Callable[[], None] | None = None, *, bulk: bool = False) -> _GatedRequest:
        """A slot for one request; ``before_send`` runs once the slot is held (it may refuse the request
        by raising: the slot is given back unused and the PBX not penalized). A ``bulk`` read (all users,
        all groups) takes longer the more users the PBX has, so only its failure penalizes, not its time."""
        return _GatedRequest(self, before_send, None, bulk)

    def lane(self, deadline: float | None = None, requests: int = 1) -> PbxLane:
        """For requests sent one after another, such as one user's read and writes (see PbxLane). With a
        ``deadline`` (on the gate's clock) the lane sends nothing after it: a request that would start
        later raises PbxBusy (work someone waits for, such as the console's dry run, stays bounded while
        a burst holds the PBX's slots). ``requests``: how many the lane expects to send (its first slot
        pays for up to that many at once; what is not sent is given back at the end)."""
        return PbxLane(self, deadline, requests)

    def _acquire(self, holder: str, release: str | None = None, deadline: float | None = None,
                 requests: int = 1) -> int:
        """Waits for a slot; ``release`` (a lane's previous slot) is given back by the first attempt.
        Returns how many requests the slot paid for (1 to ``requests``)."""
        started = self._clock()
        while True:
            if deadline is not None and self._clock() >= deadline:
                if release is not None:
                    self._release(release, 0.0, failed=False)
                raise PbxBusy(self._pbx, self._clock() - started)
            try:
                wait, paid = self._coordination.pbx_take(self._pbx, self.limits, holder, release, requests)
                release = None
            except redis.RedisError:
                # The shared store is down (a restart): go on without the shared limit rather than abort
                # writes half-way; this worker's own pool still caps what it sends (chaos suite).
                log.warning("PBX gate: coordination unreachable, request to %s sent ungated", self._pbx)
                return 1
            if wait == 0.0:
                self.waited_s += self._clock() - started
                return max(1, paid)
            # Pacing of a rate limiter (not synchronisation): the wait the bucket named, or a short poll
            # for a slot to be released.
            self._sleep(self.POLL_S if wait < 0 else min(wait, 0.25))

    def _release(self, holder: str, seconds: float, failed: bool, refund: int = 0) -> None:
        try:
            self._coordination.pbx_release(self._pbx, holder, self.limits, refund)
            if failed or seconds > self.limits.slow_s:
                self._coordination.pbx_penalize(self._pbx, self.limits)
        except redis.RedisError:  # the slot lapses with its lease
            log.warning("PBX gate: coordination unreachable, slot of %s left to its lease", self._pbx)


class PbxLane:
    """Requests sent one after another through the gate: each request's slot is given back by the next
    request's acquire, in the same round trip to the shared store, and by ``close`` after the last. One
    user's phoneconfig read, chat status read and two writes cost 5 round trips instead of 8.

    A lane that expects several requests (``PbxGate.lane(requests=n)``) pays for up to n of the PBX's rate
    with its first slot, as far as the bucket holds them, and sends the ones paid for on that slot without
    asking the shared store again; ``close`` gives back the slot and the requests paid for and not sent,
    in one round trip. A user's read and two writes: 2 round trips instead of 4. The bucket never pays
    out more than it holds, so the PBX sees no more requests per second than before.

    A lane never has two requests in flight, so the PBX still sees no more requests at once than slots
    are held; a slot is held a little longer (over the work between two requests), which errs on the safe
    side. A failed or slow request gives its slot back at once, with the penalty, as a lone one does.

        with gate.lane() as lane:
            with lane.request():
                config = rest.read_phone_config(account)
            with lane.request(fence.check):
                rest.set_dnd(account, True, config)
    """

    def __init__(self, gate: PbxGate, deadline: float | None = None, requests: int = 1) -> None:
        self._gate = gate
        self.deadline = deadline
        self._held: str | None = None
        self._expected = max(1, requests)
        self._sent = 0
        self._paid = 0  # requests paid for by the held slot and not sent yet

    def request(self, before_send: Callable[[], None] | None = None) -> _GatedRequest:
        """A slot for the lane's next request (see PbxGate.request)."""
        return _GatedRequest(self._gate, before_send, self)

    def _take_held(self) -> str | None:
        held, self._held = self._held, None
        return held

    def _hold(self, holder: str) -> None:
        self._held = holder

    def _still_expected(self) -> int:
        return max(1, self._expected - self._sent)

    def _take_paid(self) -> int:
        paid, self._paid = self._paid, 0
        return paid

    def close(self) -> None:
        """Gives back the slot of the lane's last request, and the requests paid for and not sent."""
        held = self._take_held()
        if held is not None:
            self._gate._release(held, 0.0, failed=False, refund=self._take_paid())

    def __enter__(self) -> PbxLane:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.close()


class _GatedRequest:
    def __init__(self, gate: PbxGate, before_send: Callable[[], None] | None, lane: PbxLane | None,
                 bulk: bool = False) -> None:
        self._gate = gate
        self._before_send = before_send
        self._lane = lane
        self._bulk = bulk
        self._holder = uuid.uuid4().hex
        self._started = 0.0

    def __enter__(self) -> None:
        lane = self._lane
        if lane is None:
            self._gate._acquire(self._holder)
        elif lane._paid > 0 and lane._held is not None and (
                lane.deadline is None or self._gate._clock() < lane.deadline):
            self._holder = lane._take_held()  # paid for with the lane's slot: no round trip
            lane._paid -= 1
        else:
            paid = self._gate._acquire(self._holder, lane._take_held(), lane.deadline, lane._still_expected())
            lane._paid = paid - 1
        if lane is not None:
            lane._sent += 1
        if self._before_send is not None:
            try:
                self._before_send()
            except BaseException:
                self._gate._release(self._holder, 0.0, failed=False,
                                    refund=lane._take_paid() + 1 if lane is not None else 0)
                raise
        self._started = self._gate._clock()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # A transient failure (5xx, timeout, connection refused) means the PBX is overloaded or down.
        overloaded = exc is not None and getattr(exc, "permanent", True) is False
        seconds = 0.0 if self._bulk else self._gate._clock() - self._started
        if self._lane is not None and exc is None and seconds <= self._gate.limits.slow_s:
            self._lane._hold(self._holder)  # given back by the lane's next request or its close
        else:  # given back at once, with what the lane paid for and will not send on this slot
            self._gate._release(self._holder, seconds, overloaded,
                                refund=self._lane._take_paid() if self._lane is not None else 0)


class PbxBusy(Exception):
    """A lane's deadline passed before its next request got a slot of the PBX: nothing was sent."""

    def __init__(self, pbx: str, waited_s: float) -> None:
        super().__init__(f"no free slot of the PBX {pbx} before the deadline (waited {waited_s:.1f} s)")
        self.pbx, self.waited_s = pbx, waited_s


class EventIdPending(Exception):
    """A delivery of an event whose earlier delivery is still being queued: answered "retry later"."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} is being queued by an earlier delivery")
        self.event_id = event_id


class TenantEventIds:
    """Adapts a coordination to the connector's ``EventIdStore`` for one tenant (ids never cross tenants)."""

    def __init__(self, coordination: Coordination, tenant_id: int) -> None:
        self._coordination = coordination
        self._tenant_id = tenant_id

    def add_if_new(self, event_id: str) -> bool:
        """True for a new id (now pending); False for the id of an event already queued; raises
        EventIdPending while another delivery of it is being queued (or failed and lapses soon)."""
        if self._coordination.add_event_id_if_new(self._tenant_id, event_id):
            return True
        # Any other value is done: "1" is what versions before the pending state recorded.
        if self._coordination.event_id_state(self._tenant_id, event_id) in (EVENT_PENDING, None):
            raise EventIdPending(event_id)
        return False

    def admit(self, event_id: str, echo_note: str | None) -> bool:
        """``add_if_new`` for a verified event, with the echo check in the same round trip: True if the event
        echoes a noted write of ours (the note ``echo_note`` is dropped and the id kept as done), False for a
        new id (now pending). Raises WebhookReplayed for an event handled before and EventIdPending while
        another delivery of it is being queued."""
        state = self._coordination.admit_event_id(self._tenant_id, event_id, echo_note)
        if state == EVENT_ECHO:
            return True
        if state == EVENT_NEW:
            return False
        if state == EVENT_PENDING:
            raise EventIdPending(event_id)
        raise WebhookReplayed(event_id)  # done; "1" is what versions before the pending state recorded

    def discard(self, event_id: str) -> None:
        """Forgets an id whose event could not be queued, so the bridge's retry counts as new."""
        self._coordination.discard_event_id(self._tenant_id, event_id)

    def confirm(self, event_id: str) -> None:
        """Keeps the id for an hour: its event was queued (or needs no work), so a replay is one."""
        self._coordination.confirm_event_id(self._tenant_id, event_id)
