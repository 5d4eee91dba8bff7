"""Fixtures: the real ASGI app over PostgreSQL and Redis, a Celery broker we can stop, and signed events.

The broker is a redis-server of our own on a free port (not the shared test Redis), so a test can take it
down and bring it back without touching anyone else's data. Event ids live in the shared test Redis
through ``RedisCoordination``, as in production.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from connectors.starface import sign
from embedded.redis_server import RedisServer
from models import ChangeLog, Tenant, TenantHealth, UserLink
from models.crypto import SecretBox
from models.db import make_engine, make_session_factory
from presence.linking import LinkState
from sync.coordination import LocalCoordination, RedisCoordination
from sync.runtime import Runtime, set_runtime
from tests.support.factories import make_tenant, make_user_links
from web.app import create_app
from web.settings import WebSettings
from workers import queues
from workers.app import celery_app, configure_broker

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
SECRET_A = "bridge-secret-alpha-never-shown"
SECRET_B = "bridge-secret-beta-never-shown"
PUBLIC_URL = "https://teamsconnect.example"


@pytest.fixture(scope="session")
def broker_server() -> Iterator[RedisServer]:
    """A private redis-server used only as the Celery broker, so a test can take it down."""
    server = RedisServer.started()
    yield server
    if server.process is not None:
        server.stop()


@dataclass
class Broker:
    """Reads what the web app published to the events queue, straight from the broker's Redis list."""

    server: RedisServer
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.server.url())

    def raw_messages(self) -> list[bytes]:
        """Oldest first (kombu LPUSHes and consumers pop from the right), calls' list before the lower
        priority list of the other events (workers/task_queue.py)."""
        keys = [queues.QUEUE_EVENTS, f"{queues.QUEUE_EVENTS}\x06\x169"]
        return [raw for key in keys for raw in reversed(self.client.lrange(key, 0, -1))]

    def messages(self) -> list[dict[str, Any]]:
        """Each message as ``{"task", "kwargs", "raw"}`` (Celery protocol 2: body = [args, kwargs, embed])."""
        decoded = []
        for raw in self.raw_messages():
            envelope = json.loads(raw)
            _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            decoded.append({"task": envelope["headers"]["task"], "kwargs": kwargs, "raw": raw.decode()})
        return decoded


@pytest.fixture
def broker(broker_server: RedisServer) -> Iterator[Broker]:
    if broker_server.process is None:
        broker_server.start()
    previous = celery_app.conf.broker_url
    configure_broker(broker_server.url())
    helper = Broker(broker_server)
    helper.client.flushdb()
    yield helper
    helper.client.close()
    configure_broker(previous)


@pytest.fixture
def runtime(
    postgres_url: str, postgres_engine: Engine, pg_sessions: sessionmaker[Session], box: SecretBox,
    redis_client: redis.Redis,
) -> Iterator[Runtime]:
    settings = Settings(_env_file=None, database_url=postgres_url, public_url=PUBLIC_URL)
    installed = Runtime(settings=settings, engine=postgres_engine, sessions=pg_sessions, box=box,
                        coordination=RedisCoordination(redis_client))
    set_runtime(installed)
    yield installed
    set_runtime(None)


@pytest.fixture
def runtime_without_database(box: SecretBox) -> Iterator[Runtime]:
    url = "postgresql+psycopg://postgres:db-password-never-shown@127.0.0.1:1/nowhere"
    engine = make_engine(url)
    installed = Runtime(settings=Settings(_env_file=None, database_url=url), engine=engine,
                        sessions=make_session_factory(engine), box=box, coordination=LocalCoordination())
    set_runtime(installed)
    yield installed
    set_runtime(None)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    settings = WebSettings(admin_token=ADMIN_TOKEN, metrics_token=METRICS_TOKEN)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass
class Tenants:
    alpha: int  # bridge, secret SECRET_A
    beta: int  # bridge, secret SECRET_B
    rest_only: int  # no bridge
    #: When `seeded` wrote its health rows: taken as the fixture runs, never at import, so a throttle it
    #: seeds "for five minutes" is still in force however late in a slow run the test starts.
    seeded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@pytest.fixture
def tenants(pg_sessions: sessionmaker[Session], box: SecretBox) -> Tenants:
    with pg_sessions() as session, session.begin():
        alpha = make_tenant(session, box, "alpha", starface={"bridge": {"secret": SECRET_A}})
        beta = make_tenant(session, box, "beta", starface={"bridge": {"secret": SECRET_B}})
        rest_only = make_tenant(session, box, "gamma", bridge=False)
        session.flush()
        return Tenants(alpha=alpha.id, beta=beta.id, rest_only=rest_only.id)


def event_body(**overrides: Any) -> dict[str, Any]:
    """A contract v1 telephony event (starface-bridge.md, Events) with a fresh eventId."""
    body: dict[str, Any] = {
        "eventId": str(uuid.uuid4()), "type": "telephony", "account": 17, "login": "1017",
        "occurredAt": int(time.time() * 1000), "telephonyState": "RINGING", "origin": "user",
    }
    body.update(overrides)
    return body


def signed(body: dict[str, Any] | bytes, secret: str = SECRET_A,
           timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
    """The headers and raw body of ``body`` signed with ``secret`` exactly as the bridge signs them."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"x-teamsconnect-timestamp": stamp, "x-teamsconnect-signature": sign(secret, stamp, raw)}, raw


def post_event(
    client: TestClient, tenant_id: int | str, secret: str, body: dict[str, Any] | bytes,
    *, timestamp: int | None = None,
) -> Any:
    """POSTs ``body`` signed with ``secret`` exactly as the bridge does."""
    headers, raw = signed(body, secret, timestamp)
    return client.post(f"/hooks/starface/{tenant_id}", content=raw,
                       headers={"Content-Type": "application/json", **headers})


#: E-mail addresses the seed puts into link reasons, error messages and change causes; none may leave.
SEEDED_EMAILS = ("ann@alpha.example", "bo@alpha.example", "admin@beta.example", "carl@beta.example")


def _set(row: Any, **values: Any) -> None:
    for name, value in values.items():
        setattr(row, name, value)


@pytest.fixture
def seeded(tenants: Tenants, pg_sessions: sessionmaker[Session]) -> Tenants:
    """Alpha: healthy, 3 linked + 3 problem users, 3 changes. Beta: failing and throttled, 1 change."""
    tenants.seeded_at = now = datetime.now(UTC)
    with pg_sessions() as session, session.begin():
        alpha = session.get_one(Tenant, tenants.alpha)
        linked = make_user_links(session, alpha, 3)
        session.add_all([
            UserLink(tenant_id=alpha.id, starface_account_id=500, login_id="1500", email="ann@alpha.example",
                     display_name="Ann", state=LinkState.DUPLICATE_EMAIL.value,
                     reason="ann@alpha.example is the mail of two Entra users"),
            UserLink(tenant_id=alpha.id, starface_account_id=501, login_id="1501", email="bo@alpha.example",
                     display_name="Bo", state=LinkState.UNMATCHED.value,
                     reason="no Entra user has the e-mail <bo@alpha.example>"),
            UserLink(tenant_id=alpha.id, starface_account_id=502, login_id="1502", display_name="Cy",
                     state=LinkState.NO_EMAIL.value, reason="the STARFACE user has no e-mail address"),
        ])
        # Every tenant has a health row from the start (the tenant service creates it); set its figures.
        _set(session.get_one(TenantHealth, alpha.id), last_success_at=now - timedelta(seconds=5), polls_ok=7,
             polls_failed=1, throttle_count=2, changes_applied=3)
        _set(session.get_one(TenantHealth, tenants.beta), last_success_at=now - timedelta(minutes=5),
             last_error_at=now - timedelta(seconds=30), last_error_code="AADSTS7000215",
             last_error_message="invalid client secret of the app of admin@beta.example",
             throttled_until=now + timedelta(minutes=5), polls_ok=1, polls_failed=4)
        causes = ["teams: Busy/InACall", "teams: Available/Available", "bridge event: RINGING"]
        for n, cause in enumerate(causes):
            session.add(ChangeLog(
                tenant_id=alpha.id, user_link_id=linked[0].id, target="starface", before={"dnd": n % 2 == 1},
                after={"dnd": n % 2 == 0}, cause=cause, observed_at=now + timedelta(seconds=n),
                applied_at=now + timedelta(seconds=n, milliseconds=250),
            ))
        session.add(ChangeLog(tenant_id=tenants.beta, target="teams", before={}, after={"presence": "Busy"},
                              cause="STARFACE call of carl@beta.example", observed_at=None, applied_at=now))
    return tenants
