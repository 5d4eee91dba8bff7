"""The receiver keeps a tenant's bridge secret for seconds (sync/bridge_tenants.py): a busy PBX's events
need no row read each, and a rotated secret still counts at once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from models.crypto import SecretBox
from sync.bridge_tenants import KEEP_S, BridgeTenants
from sync.runtime import Runtime
from tests.support.clock import FakeClock
from tests.support.query_counter import count_queries
from tests.web.conftest import SECRET_A, Broker, Tenants, event_body, post_event

NEW_SECRET = "b" * 64


def _rotate(pg_sessions: sessionmaker[Session], box: SecretBox, tenant_id: int, secret: str) -> None:
    with pg_sessions() as session, session.begin():
        session.get_one(Tenant, tenant_id).bridge_secret_encrypted = box.encrypt(secret)


def test_a_kept_tenant_is_not_read_again(
    client: TestClient, tenants: Tenants, broker: Broker, postgres_engine: Engine
) -> None:
    post_event(client, tenants.alpha, SECRET_A, event_body())
    with count_queries(postgres_engine) as queries:
        second = post_event(client, tenants.alpha, SECRET_A, event_body())

    assert second.status_code == 202
    assert not [s for s in queries.statements if "bridge_secret" in s]


def test_a_rotated_secret_counts_at_once_and_the_old_one_lapses(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime,
    pg_sessions: sessionmaker[Session], box: SecretBox,
) -> None:
    clock = FakeClock()
    runtime.bridge_tenants = BridgeTenants(clock=clock)
    assert post_event(client, tenants.alpha, SECRET_A, event_body()).status_code == 202
    _rotate(pg_sessions, box, tenants.alpha, NEW_SECRET)

    # The module instance has the new secret already: its first event is accepted, not refused.
    assert post_event(client, tenants.alpha, NEW_SECRET, event_body()).status_code == 202
    clock.now += KEEP_S + 0.1
    old = post_event(client, tenants.alpha, SECRET_A, event_body())

    assert old.status_code == 401
    assert "signature" in old.json()["error"]
    assert len(broker.messages()) == 2


def test_a_disabled_tenant_is_seen_once_its_facts_lapse(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime,
    pg_sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    runtime.bridge_tenants = BridgeTenants(clock=clock)
    assert post_event(client, tenants.alpha, SECRET_A, event_body()).status_code == 202
    with pg_sessions() as session, session.begin():
        session.get_one(Tenant, tenants.alpha).enabled = False
    clock.now += KEEP_S + 0.1
    body = event_body()

    assert post_event(client, tenants.alpha, SECRET_A, body).json() == {
        "ignored": body["eventId"], "reason": "tenant is disabled"}
    assert len(broker.messages()) == 1


def test_an_unknown_tenant_is_kept_too_and_the_kept_are_bounded(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime, postgres_engine: Engine
) -> None:
    """An unknown tenant's request costs what a known one's does (no row read while kept), so timing does
    not tell them apart; made-up ids cannot fill the memory."""
    runtime.bridge_tenants = BridgeTenants(most_kept=3)
    unknown = tenants.beta + 1000
    assert post_event(client, unknown, SECRET_A, event_body()).status_code == 401
    with count_queries(postgres_engine) as queries:
        again = post_event(client, unknown, SECRET_A, event_body())
    for made_up in range(unknown + 1, unknown + 6):
        post_event(client, made_up, SECRET_A, event_body())

    assert again.status_code == 401
    assert not [s for s in queries.statements if "bridge_secret" in s]
    assert len(runtime.bridge_tenants) <= 3
    assert broker.raw_messages() == []
