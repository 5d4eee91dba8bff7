"""The webhook receiver against real PostgreSQL, Redis and a Redis broker (starface-bridge.md, Events)."""

from __future__ import annotations

import json
import socket
import time

import pytest
import redis
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from sync.coordination import RedisCoordination
from sync.runtime import Runtime
from tests.support.factories import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD
from tests.web.conftest import SECRET_A, SECRET_B, Broker, Tenants, event_body, post_event
from workers import queues

ALL_SECRETS = (SECRET_A, SECRET_B, BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD)


def test_it_accepts_a_good_event_and_enqueues_it_once_without_secrets(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    body = event_body(type="dnd", dnd=True, telephonyState=None)
    response = post_event(client, tenants.alpha, SECRET_A, body)

    assert response.status_code == 202
    assert response.json() == {"accepted": body["eventId"]}
    [message] = broker.messages()
    assert message["task"] == queues.TASK_STARFACE_EVENT
    assert message["kwargs"]["tenant_id"] == tenants.alpha
    event = message["kwargs"]["event"]
    fields = ("event_id", "type", "account", "login", "dnd", "origin", "telephony_state")
    assert [event[name] for name in fields] == [body["eventId"], "dnd", 17, "1017", True, "user", None]
    assert message["kwargs"]["received_at"]
    for secret in ALL_SECRETS:
        assert secret not in message["raw"]


def test_it_rejects_a_bad_signature_and_enqueues_nothing(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    response = post_event(client, tenants.alpha, "not-the-bridge-secret", event_body())

    assert response.status_code == 401
    assert "signature" in response.json()["error"]
    assert broker.raw_messages() == []


def test_it_rejects_a_timestamp_301_seconds_off(client: TestClient, tenants: Tenants, broker: Broker) -> None:
    late = post_event(client, tenants.alpha, SECRET_A, event_body(), timestamp=int(time.time()) - 301)
    # Whole seconds: int() drops up to a second, and the request's own time comes off an early stamp
    # before it is checked, so "+301" could arrive as 300 s off on a slow run (a flake seen in CI).
    early = post_event(client, tenants.alpha, SECRET_A, event_body(), timestamp=int(time.time()) + 302)

    assert (late.status_code, early.status_code) == (401, 401)
    assert "timestamp" in late.json()["error"]
    assert broker.raw_messages() == []


def test_it_answers_a_replay_as_duplicate_and_enqueues_once(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    body = event_body()
    first = post_event(client, tenants.alpha, SECRET_A, body)
    again = post_event(client, tenants.alpha, SECRET_A, body)

    assert first.json() == {"accepted": body["eventId"]}
    assert (again.status_code, again.json()) == (202, {"duplicate": body["eventId"]})
    assert len(broker.messages()) == 1


def test_it_refuses_one_tenants_secret_on_another_tenants_url(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    response = post_event(client, tenants.beta, SECRET_A, event_body())

    assert response.status_code == 401
    assert broker.raw_messages() == []


def test_it_keeps_event_ids_per_tenant(client: TestClient, tenants: Tenants, broker: Broker) -> None:
    body = event_body()
    post_event(client, tenants.alpha, SECRET_A, body)
    other = post_event(client, tenants.beta, SECRET_B, body)

    assert other.json() == {"accepted": body["eventId"]}
    assert [m["kwargs"]["tenant_id"] for m in broker.messages()] == [tenants.alpha, tenants.beta]


@pytest.mark.parametrize("tenant_ref", ["unknown", "rest_only", "0", "abc", "99999999999"])
def test_it_answers_unknown_and_bridge_less_tenants_exactly_like_a_bad_signature(
    client: TestClient, tenants: Tenants, broker: Broker, tenant_ref: str
) -> None:
    """Was 404 for these and 401 for a bridge tenant, which told anyone which ids are bridge tenants."""
    named = {"unknown": str(tenants.beta + 1000), "rest_only": str(tenants.rest_only)}
    ref = named.get(tenant_ref, tenant_ref)
    response = post_event(client, ref, SECRET_A, event_body())
    real = post_event(client, tenants.alpha, "not-the-bridge-secret", event_body())

    assert (response.status_code, response.json()) == (real.status_code, real.json())
    assert response.status_code == 401
    assert broker.raw_messages() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [({"account": "17"}, "account"), ({"type": "telephony", "telephonyState": None}, "telephonyState"),
     ({"type": "ringing"}, "type"), ({"origin": "pbx"}, "origin")],
)
def test_it_answers_400_naming_the_field_of_a_malformed_body(
    client: TestClient, tenants: Tenants, broker: Broker, change: dict[str, object], field: str
) -> None:
    body = {key: value for key, value in event_body(**change).items() if value is not None}
    response = post_event(client, tenants.alpha, SECRET_A, body)

    assert response.status_code == 400
    assert field in response.json()["error"]
    assert broker.raw_messages() == []


def test_it_answers_400_for_a_body_that_is_not_json(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    response = post_event(client, tenants.alpha, SECRET_A, b"{not json")

    assert response.status_code == 400
    assert "body" in response.json()["error"]


def test_it_verifies_the_signature_before_parsing_the_body(client: TestClient, tenants: Tenants) -> None:
    response = post_event(client, tenants.alpha, "forged", b"{not json")

    assert response.status_code == 401
    assert "signature" in response.json()["error"]


def test_it_refuses_an_oversized_body_without_reading_it(client: TestClient, tenants: Tenants) -> None:
    body = event_body(chatPresenceMessage="x" * 70_000)
    response = post_event(client, tenants.alpha, SECRET_A, body)

    assert response.status_code == 413


def test_it_answers_503_while_the_broker_is_down_and_accepts_the_retry(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    body = event_body()
    broker.server.stop()
    try:
        down = post_event(client, tenants.alpha, SECRET_A, body)
    finally:
        broker.server.start()

    assert down.status_code == 503
    assert "Retry-After" in down.headers
    retried = post_event(client, tenants.alpha, SECRET_A, body)
    assert (retried.status_code, retried.json()) == (202, {"accepted": body["eventId"]})
    assert [m["kwargs"]["event"]["event_id"] for m in broker.messages()] == [body["eventId"]]


def test_it_answers_503_while_the_broker_is_down(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    broker.server.stop()
    try:
        down = post_event(client, tenants.alpha, SECRET_A, event_body())
    finally:
        broker.server.start()

    assert down.status_code == 503
    assert json.dumps(down.json()).find("redis://") == -1


def test_it_ignores_events_of_a_disabled_tenant_after_verifying_them(
    client: TestClient, tenants: Tenants, broker: Broker, pg_sessions: sessionmaker[Session]
) -> None:
    with pg_sessions() as session, session.begin():
        session.get_one(Tenant, tenants.alpha).enabled = False
    body = event_body()
    forged = post_event(client, tenants.alpha, "forged", body)
    signed = post_event(client, tenants.alpha, SECRET_A, body)

    assert forged.status_code == 401
    assert signed.status_code == 202
    assert signed.json() == {"ignored": body["eventId"], "reason": "tenant is disabled"}
    assert broker.raw_messages() == []


def test_it_answers_503_while_the_event_id_store_is_down(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime
) -> None:
    closed_port = redis.Redis(port=_closed_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    runtime.coordination = RedisCoordination(closed_port)
    response = post_event(client, tenants.alpha, SECRET_A, event_body())

    assert response.status_code == 503
    assert response.json() == {"error": "the event-id store is unavailable; retry later"}
    assert broker.raw_messages() == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_it_answers_401_not_500_for_a_timestamp_of_non_ascii_digits(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    raw = json.dumps(event_body()).encode()
    response = client.post(f"/hooks/starface/{tenants.alpha}", content=raw, headers={
        "Content-Type": "application/json", "X-TeamsConnect-Timestamp": "17²".encode("latin-1"),
        "X-TeamsConnect-Signature": "sha256=" + "0" * 64})
    assert response.status_code == 401
    assert "timestamp" in response.json()["error"].lower()
    assert broker.raw_messages() == []
