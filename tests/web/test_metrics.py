"""GET /metrics: per-tenant health from the database and webhook outcomes, in Prometheus text format."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from sync.runtime import Runtime
from tests.web.conftest import (
    METRICS_TOKEN,
    SECRET_A,
    SEEDED_EMAILS,
    Broker,
    Tenants,
    event_body,
    post_event,
)
from tests.web.test_admin import SECRETS
from web.app import create_app
from web.settings import WebSettings

AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def tenant_labels(tenant_id: int, name: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"tenant_id": str(tenant_id), "tenant": name, **extra}.items()))


def test_it_exports_each_tenants_health_counters(client: TestClient, seeded: Tenants) -> None:
    samples = scrape(client)
    alpha, beta = tenant_labels(seeded.alpha, "alpha"), tenant_labels(seeded.beta, "beta")
    polls = "teamsconnect_tenant_polls_total"

    assert samples[("teamsconnect_metrics_database_up", ())] == 1
    assert samples[(polls, tenant_labels(seeded.alpha, "alpha", result="ok"))] == 7
    assert samples[(polls, tenant_labels(seeded.alpha, "alpha", result="failed"))] == 1
    assert samples[(polls, tenant_labels(seeded.beta, "beta", result="failed"))] == 4
    assert samples[("teamsconnect_tenant_throttles_total", alpha)] == 2
    assert samples[("teamsconnect_tenant_changes_applied_total", alpha)] == 3
    assert samples[("teamsconnect_tenant_last_success_timestamp_seconds", alpha)] == pytest.approx(
        seeded.seeded_at.timestamp() - 5, abs=0.01
    )
    assert samples[("teamsconnect_tenant_throttled", alpha)] == 0
    assert samples[("teamsconnect_tenant_throttled", beta)] == 1
    never_polled = tenant_labels(seeded.rest_only, "gamma")
    assert ("teamsconnect_tenant_last_success_timestamp_seconds", never_polled) not in samples
    assert samples[(polls, tenant_labels(seeded.rest_only, "gamma", result="ok"))] == 0


def test_it_counts_webhook_requests_by_outcome(client: TestClient, tenants: Tenants, broker: Broker) -> None:
    body = event_body()
    post_event(client, tenants.alpha, SECRET_A, body)
    post_event(client, tenants.alpha, SECRET_A, body)
    post_event(client, tenants.alpha, "wrong", event_body())
    post_event(client, tenants.beta + 100, SECRET_A, event_body())
    post_event(client, tenants.beta + 101, SECRET_A, event_body())

    samples = scrape(client)
    counts = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items() if name == "teamsconnect_webhook_requests_total"
    }
    assert counts == {"accepted": 1, "duplicate": 1, "pending": 0, "rejected": 1, "malformed": 0,
                      "unknown_tenant": 2, "ignored": 0, "echo": 0, "unavailable": 0}


def test_it_exports_no_secret_and_no_e_mail(client: TestClient, seeded: Tenants, broker: Broker) -> None:
    post_event(client, seeded.alpha, SECRET_A, event_body())
    text = client.get("/metrics", headers=AUTH).text

    assert "teamsconnect_tenant_polls_total" in text
    for private in (*SECRETS, *SEEDED_EMAILS, "@"):
        assert private not in text, private


def test_it_still_answers_when_the_database_is_down(runtime_without_database: Runtime) -> None:
    with TestClient(create_app(WebSettings(metrics_token=METRICS_TOKEN))) as client:
        samples = scrape(client)

    assert samples[("teamsconnect_metrics_database_up", ())] == 0
    assert samples[("teamsconnect_webhook_requests_total", (("outcome", "accepted"),))] == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN},
                                     {"Authorization": "Bearer " + METRICS_TOKEN[:-1]}])
def test_it_refuses_metrics_without_the_metrics_token(
    client: TestClient, seeded: Tenants, headers: dict[str, str]
) -> None:
    """/metrics used to answer anyone on the webhook's public port with every customer's name and id."""
    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "alpha" not in response.text and "teamsconnect_tenant" not in response.text


def test_it_switches_metrics_off_without_a_configured_token(runtime: Runtime, seeded: Tenants) -> None:
    with TestClient(create_app(WebSettings(admin_token="a" * 32))) as client:
        response = client.get("/metrics", headers=AUTH)

    assert response.status_code == 503
    assert response.json() == {"error": "metrics disabled: set TEAMSCONNECT_METRICS_TOKEN"}


def test_the_admin_token_does_not_open_metrics(client: TestClient, seeded: Tenants) -> None:
    from tests.web.conftest import ADMIN_TOKEN

    assert client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 401


def test_it_exports_the_client_secrets_expiry_where_it_is_known(
    client: TestClient, tenants: Tenants, pg_sessions: sessionmaker[Session]
) -> None:
    expires = datetime(2027, 6, 30, tzinfo=UTC)
    with pg_sessions() as session, session.begin():
        session.get_one(Tenant, tenants.alpha).ms_secret_expires_at = expires
    samples = scrape(client)
    expiry = "teamsconnect_tenant_client_secret_expiry_timestamp_seconds"
    assert samples[(expiry, tenant_labels(tenants.alpha, "alpha"))] == expires.timestamp()
    assert (expiry, tenant_labels(tenants.beta, "beta")) not in samples  # unknown: no sample, not 0
