"""Prometheus metrics: per-tenant health read from the database at scrape time, webhook outcomes counted here.

Tenant figures come from ``TenantHealth``, which every worker updates, so any web process reports the same
numbers. Webhook outcomes are counted in this process (one series per outcome, never per tenant id: an
id in the URL is caller-controlled and would let anyone grow the label set). Labels carry tenant ids and
names only; no secret and no e-mail address is ever exported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant, TenantHealth

logger = logging.getLogger(__name__)

#: Every answer the webhook receiver can give, so each series exists (at 0) from the first scrape.
WEBHOOK_OUTCOMES = (
    "accepted", "duplicate", "pending", "rejected", "malformed", "unknown_tenant", "ignored", "echo",
    "unavailable",
)

_TENANT_LABELS = ["tenant_id", "tenant"]


class TenantHealthCollector(Collector):
    """Reads every tenant's health row on each scrape; reports the database as down instead of failing."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session]]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        database_up = GaugeMetricFamily(
            "teamsconnect_metrics_database_up", "1 if the tenant figures could be read from the database."
        )
        try:
            with self._sessions()() as session:
                rows = session.execute(
                    select(Tenant.id, Tenant.name, Tenant.enabled, TenantHealth, Tenant.ms_secret_expires_at)
                    .outerjoin(TenantHealth, TenantHealth.tenant_id == Tenant.id)
                    .order_by(Tenant.id)
                ).all()
        except SQLAlchemyError as exc:
            logger.warning("metrics: cannot read tenant health: %s", type(exc).__name__)
            database_up.add_metric([], 0)
            yield database_up
            return
        database_up.add_metric([], 1)
        yield database_up
        yield from _tenant_families(rows, datetime.now(UTC))


def _tenant_families(rows: list, now: datetime) -> Iterator[Metric]:  # type: ignore[type-arg]
    enabled = GaugeMetricFamily(
        "teamsconnect_tenant_enabled", "1 if the tenant is synced.", labels=_TENANT_LABELS
    )
    polls = CounterMetricFamily(
        "teamsconnect_tenant_polls", "Presence polls per tenant by result.",
        labels=[*_TENANT_LABELS, "result"],
    )
    throttles = CounterMetricFamily(
        "teamsconnect_tenant_throttles", "Graph throttling answers (429) per tenant.", labels=_TENANT_LABELS
    )
    changes = CounterMetricFamily(
        "teamsconnect_tenant_changes_applied", "Changes applied per tenant.", labels=_TENANT_LABELS
    )
    last_success = GaugeMetricFamily(
        "teamsconnect_tenant_last_success_timestamp_seconds",
        "Unix time of the tenant's last successful poll (absent if never).",
        labels=_TENANT_LABELS,
    )
    throttled = GaugeMetricFamily(
        "teamsconnect_tenant_throttled", "1 while Graph throttles the tenant (Retry-After running).",
        labels=_TENANT_LABELS,
    )
    secret_expiry = GaugeMetricFamily(
        "teamsconnect_tenant_client_secret_expiry_timestamp_seconds",
        "Unix time the tenant's own Entra client secret expires (read from Entra or entered; absent if "
        "unknown); alert 30 days ahead.",
        labels=_TENANT_LABELS,
    )
    for tenant_id, name, is_enabled, health, secret_expires_at in rows:
        labels = [str(tenant_id), name]
        enabled.add_metric(labels, 1 if is_enabled else 0)
        polls.add_metric([*labels, "ok"], health.polls_ok if health else 0)
        polls.add_metric([*labels, "failed"], health.polls_failed if health else 0)
        throttles.add_metric(labels, health.throttle_count if health else 0)
        changes.add_metric(labels, health.changes_applied if health else 0)
        if health is not None and health.last_success_at is not None:
            last_success.add_metric(labels, health.last_success_at.timestamp())
        until = health.throttled_until if health is not None else None
        is_throttled = until is not None and until > now
        throttled.add_metric(labels, 1 if is_throttled else 0)
        if secret_expires_at is not None:
            secret_expiry.add_metric(labels, secret_expires_at.timestamp())
    yield from (enabled, polls, throttles, changes, last_success, throttled, secret_expiry)


class WebMetrics:
    """One registry per app instance (tests build several apps; the global registry would clash)."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session]]) -> None:
        self.registry = CollectorRegistry()
        self.webhook_requests = Counter(
            "teamsconnect_webhook_requests",
            "STARFACE bridge webhook requests by outcome.",
            labelnames=["outcome"],
            registry=self.registry,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_requests.labels(outcome=outcome)
        self.registry.register(TenantHealthCollector(sessions))

    def count_webhook(self, outcome: str) -> None:
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError(f"unknown webhook outcome {outcome!r}")
        self.webhook_requests.labels(outcome=outcome).inc()
