"""Hostile webhook requests (issue 13, items 1, 2, 3, 7): never a 500, a traceback or a lost event.

The TestClient re-raises any exception of the app, so a request that would have been a 500 fails the test
with its traceback. Real PostgreSQL, Redis and broker, as in test_hooks.py.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.starface import StarfaceEvent, sign
from sync import coordination as coordination_module
from sync.coordination import RedisCoordination
from sync.ports import CollectingQueue, QueueUnavailable
from sync.runtime import Runtime
from sync.webhook import receive_event
from tests.web.conftest import SECRET_A, Broker, Tenants, event_body, post_event, signed

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


#: What an HTTP client can put into a header value (no line breaks, no NUL).
_HEADER_CHARS = st.characters(codec="latin-1", exclude_characters="\r\n\x00")


def _clockless(answer: str) -> str:
    return re.sub(r"timestamp is \d+ s away", "timestamp is N s away", answer)


def _post_raw(client: TestClient, tenant_id: int | str, raw: bytes, headers: dict[str, Any]) -> Any:
    return client.post(f"/hooks/starface/{tenant_id}", content=raw,
                       headers={"Content-Type": "application/json", **headers})


# --- item 1: the timestamp header -------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [13, 400, 4301, 5000])
def test_it_answers_401_naming_the_header_for_an_over_long_timestamp(
    client: TestClient, tenants: Tenants, broker: Broker, digits: int
) -> None:
    raw = json.dumps(event_body()).encode()
    stamp = "9" * digits
    response = _post_raw(client, tenants.alpha, raw, {
        "X-TeamsConnect-Timestamp": stamp, "X-TeamsConnect-Signature": sign(SECRET_A, stamp, raw)})

    assert response.status_code == 401
    assert "X-TeamsConnect-Timestamp" in response.json()["error"]
    assert broker.raw_messages() == []


@FUZZ
@given(stamp=st.text(_HEADER_CHARS, max_size=60) | st.from_regex(r"\A[0-9]{1,6000}\Z"),
       signature=st.text(_HEADER_CHARS, max_size=80) | st.just("sha256=é"))
def test_any_timestamp_and_signature_header_gets_401_never_500(
    client: TestClient, tenants: Tenants, stamp: str, signature: str
) -> None:
    raw = json.dumps(event_body()).encode()
    headers = {"X-TeamsConnect-Timestamp": stamp.encode("latin-1", "replace"),
               "X-TeamsConnect-Signature": signature.encode("latin-1", "replace")}
    real = _post_raw(client, tenants.alpha, raw, headers)
    unknown = _post_raw(client, tenants.beta + 1000, raw, headers)

    assert real.status_code == 401
    # The same answer, but for how far the stamp is from the clock: the two requests may straddle a second.
    assert (unknown.status_code, _clockless(unknown.text)) == (real.status_code, _clockless(real.text))


# --- item 2 and 7: the body of a correctly signed event ---------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"occurredAt": 10**20}, "occurredAt"),
    ({"occurredAt": -(10**20)}, "occurredAt"),
    ({"occurredAt": -1}, "occurredAt"),
    ({"account": 2**70}, "account"),
    ({"account": 2**31}, "account"),
    ({"account": -1}, "account"),
    ({"eventId": "x" * 60_000}, "eventId"),
    ({"eventId": "x" * 201}, "eventId"),
    ({"eventId": "id\x00with-nul"}, "eventId"),
    ({"eventId": "line\nbreak"}, "eventId"),
    ({"eventId": "grüße"}, "eventId"),
    ({"login": "1" * 101}, "login"),
    ({"login": "10\x0017"}, "login"),
])
def test_it_answers_400_naming_the_field_and_loses_no_event(
    client: TestClient, tenants: Tenants, broker: Broker, change: dict[str, Any], field: str
) -> None:
    bad = event_body(**change)
    response = post_event(client, tenants.alpha, SECRET_A, bad)

    assert response.status_code == 400
    assert field in response.json()["error"]
    assert broker.raw_messages() == []
    if field != "eventId":  # the bridge's corrected retry with the same id is new, not a "duplicate"
        retry = post_event(client, tenants.alpha, SECRET_A, event_body(eventId=bad["eventId"]))
        assert (retry.status_code, retry.json()) == (202, {"accepted": bad["eventId"]})


def test_an_id_of_200_printable_characters_is_accepted(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    response = post_event(client, tenants.alpha, SECRET_A, event_body(eventId="e" * 200))
    assert response.status_code == 202
    assert len(broker.raw_messages()) == 1


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "eventId": st.text(max_size=250) | st.uuids().map(str),
        "type": st.sampled_from(["telephony", "dnd", "presence", "x", ""]) | _json_scalars,
        "account": st.integers(min_value=-(2**80), max_value=2**80) | _json_scalars,
        "login": st.text(max_size=120) | _json_scalars,
        "occurredAt": st.integers(min_value=-(10**25), max_value=10**25) | _json_scalars,
        "origin": st.sampled_from(["user", "integration"]) | _json_scalars,
        "telephonyState": st.sampled_from(["RINGING", "ACTIVE", "AVAILABLE", "nope"]) | _json_scalars,
        "dnd": _json_scalars,
        "chatPresence": st.sampled_from(["AWAY", "AVAILABLE", "nope"]) | _json_scalars,
        "chatPresenceMessage": st.text(max_size=50) | _json_scalars,
    },
)


@FUZZ
@given(body=_bodies)
def test_any_signed_body_gets_202_or_400_never_500(
    client: TestClient, tenants: Tenants, body: dict[str, Any]
) -> None:
    response = post_event(client, tenants.alpha, SECRET_A, body)
    assert response.status_code in (202, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"].startswith("body is not a contract v1 event")


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b"\xff\xfe\x00garbage",
    b'{"eventId": "\\ud800"}',
    b"",
])
def test_it_answers_400_for_a_signed_body_that_is_no_event(
    client: TestClient, tenants: Tenants, broker: Broker, raw: bytes
) -> None:
    response = post_event(client, tenants.alpha, SECRET_A, raw[:60_000])
    assert response.status_code == 400
    assert broker.raw_messages() == []


# --- item 2: a failure after the id was recorded forgets it ---------------------------------------------


class _BrokenQueue(CollectingQueue):
    """A TaskQueue whose publish fails with an error the receiver does not expect."""

    def starface_event(self, tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
        raise RuntimeError("publish failed in an unexpected way")


def test_any_failure_after_recording_the_id_forgets_it_so_the_retry_is_accepted(
    runtime: Runtime, tenants: Tenants
) -> None:
    body = event_body()
    headers, raw = signed(body)

    failed = receive_event(runtime, _BrokenQueue(), str(tenants.alpha), headers, raw)
    retried_into = CollectingQueue()
    retry = receive_event(runtime, retried_into, str(tenants.alpha), headers, raw)

    assert failed.status == 503
    assert (retry.status, retry.body) == (202, {"accepted": body["eventId"]})
    assert [event.event_id for _, event, _ in retried_into.events] == [body["eventId"]]


# --- an event id is pending until its event is queued -----------------------------------------------------


class _QueueSeeingASecondDelivery(CollectingQueue):
    """Publishes, but first lets the bridge deliver the same event again (a retry racing the first)."""

    def __init__(self, deliver_again: Any) -> None:
        super().__init__()
        self._deliver_again = deliver_again
        self.second: Any = None

    def starface_event(self, tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
        self.second = self._deliver_again()
        super().starface_event(tenant_id, event, received_at)


def test_a_delivery_racing_one_that_is_still_being_queued_is_asked_to_retry_not_told_duplicate(
    runtime: Runtime, tenants: Tenants
) -> None:
    body = event_body()
    headers, raw = signed(body)
    queue = _QueueSeeingASecondDelivery(
        lambda: receive_event(runtime, CollectingQueue(), str(tenants.alpha), headers, raw))
    first = receive_event(runtime, queue, str(tenants.alpha), headers, raw)
    later = receive_event(runtime, CollectingQueue(), str(tenants.alpha), headers, raw)

    assert (first.status, first.body) == (202, {"accepted": body["eventId"]})
    assert queue.second.status == 503 and queue.second.headers["Retry-After"] == "1"  # the first might fail
    assert (later.status, later.body) == (202, {"duplicate": body["eventId"]})  # queued: now a replay
    assert len(queue.events) == 1


class _CoordinationLosingRedisOnForget(RedisCoordination):
    """Redis fails right after the id was recorded: taking it back fails too."""

    def discard_event_id(self, tenant_id: int, event_id: str) -> None:
        raise redis.ConnectionError("Redis went away")


class _UnavailableQueue(CollectingQueue):
    def starface_event(self, tenant_id: int, event: StarfaceEvent, received_at: datetime) -> None:
        raise QueueUnavailable("ConnectionError")


def test_an_id_that_could_not_be_taken_back_lapses_and_the_bridges_retry_is_then_accepted(
    runtime: Runtime, tenants: Tenants, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coordination_module, "PENDING_EVENT_ID_TTL_S", 1)
    failing = replace(runtime, coordination=_CoordinationLosingRedisOnForget(redis_client))
    body = event_body()
    headers, raw = signed(body)

    failed = receive_event(failing, _UnavailableQueue(), str(tenants.alpha), headers, raw)
    assert failed.status == 503
    early = receive_event(runtime, CollectingQueue(), str(tenants.alpha), headers, raw)
    assert early.status == 503  # never a "duplicate" for an event that was not queued

    retried_into = CollectingQueue()
    deadline = time.monotonic() + 10
    retry = early
    while retry.status != 202 and time.monotonic() < deadline:
        time.sleep(0.1)
        retry = receive_event(runtime, retried_into, str(tenants.alpha), headers, raw)
    assert (retry.status, retry.body) == (202, {"accepted": body["eventId"]})
    assert [event.event_id for _, event, _ in retried_into.events] == [body["eventId"]]
