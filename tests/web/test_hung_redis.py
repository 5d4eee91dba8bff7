"""A Redis that accepts connections but never answers (a redis-server we SIGSTOP), issue 13 item 8.

The bridge contract promises an answer within 1 s; with redis-py's defaults (no read timeout) the webhook
waited as long as Redis hung, and /healthz said ok. Coordination is built exactly as production builds it
(sync.runtime.redis_client); a request that has not finished after 3 s counts as hanging.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from embedded.redis_server import RedisServer
from sync.coordination import RedisCoordination
from sync.ports import CollectingQueue
from sync.runtime import Runtime, redis_client
from sync.webhook import receive_event
from tests.web.conftest import SECRET_A, Broker, Tenants, event_body, post_event, signed
from web.settings import WebSettings

HANGS_AFTER_S = 3.0


@pytest.fixture
def hung_redis() -> Iterator[RedisServer]:
    server = RedisServer.started()
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    yield server
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(HANGS_AFTER_S)
    return thread, result


def test_the_webhook_answers_503_instead_of_hanging_on_a_hung_redis(
    runtime: Runtime, tenants: Tenants, hung_redis: RedisServer
) -> None:
    runtime.coordination = RedisCoordination(redis_client(hung_redis.url()))
    headers, raw = signed(event_body())

    thread, result = _in_thread(lambda: receive_event(runtime, CollectingQueue(), str(tenants.alpha), headers,
                                                      raw))

    assert not thread.is_alive(), f"the webhook still waits on Redis after {HANGS_AFTER_S} s"
    assert (result[0].status, result[0].body) == (503, {"error": "the event-id store is unavailable; "
                                                                 "retry later"})


def test_the_webhook_answers_503_instead_of_hanging_on_a_hung_broker_and_takes_the_retry(
    client: TestClient, tenants: Tenants, broker: Broker
) -> None:
    """The broker is a Redis too: a publish to one that hangs (here: SIGSTOPped after a first publish left a
    pooled connection) must fail within the bridge's patience, and give the event id back for the retry."""
    assert post_event(client, tenants.alpha, SECRET_A, event_body()).status_code == 202
    assert broker.server.process is not None
    body = event_body()
    os.kill(broker.server.process.pid, signal.SIGSTOP)
    try:
        thread, result = _in_thread(lambda: post_event(client, tenants.alpha, SECRET_A, body))
    finally:
        os.kill(broker.server.process.pid, signal.SIGCONT)
    assert not thread.is_alive(), f"the webhook still waits on the broker after {HANGS_AFTER_S} s"
    assert result[0].status_code == 503
    assert result[0].json() == {"error": "the event queue is unavailable; retry later"}

    retried = post_event(client, tenants.alpha, SECRET_A, body)
    assert (retried.status_code, retried.json()) == (202, {"accepted": body["eventId"]})
    assert [m["kwargs"]["event"]["event_id"] for m in broker.messages()][-1] == body["eventId"]


def test_readyz_names_a_hung_redis_and_healthz_stays_a_liveness_check(
    client: TestClient, runtime: Runtime, broker: Broker, hung_redis: RedisServer
) -> None:
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["redis"]) == (200, "ok")

    runtime.coordination = RedisCoordination(redis_client(hung_redis.url()))
    thread, result = _in_thread(lambda: client.get("/readyz"))

    assert not thread.is_alive(), f"/readyz still waits on Redis after {HANGS_AFTER_S} s"
    response = result[0]
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "not ready: redis down"
    assert body["redis"] != "ok" and (body["database"], body["broker"]) == ("ok", "ok")
    assert "127.0.0.1" not in response.text


def test_readyz_names_a_stopped_broker(client: TestClient, broker: Broker) -> None:
    broker.server.stop()
    try:
        response = client.get("/readyz")
    finally:
        broker.server.start()

    assert response.status_code == 503
    assert response.json()["error"] == "not ready: broker down"


def test_readyz_names_an_unreachable_database(runtime_without_database: Runtime) -> None:
    from web.app import create_app
    from web.settings import WebSettings

    with TestClient(create_app(WebSettings())) as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    assert "database" in response.json()["error"]
    assert "db-password-never-shown" not in response.text


def test_the_web_apps_own_runtime_uses_the_short_timeouts(
    runtime: Runtime, tenants: Tenants, hung_redis: RedisServer
) -> None:
    """The runtime the web process builds for itself (not one a test installs) fails fast too."""
    from config import Settings
    from sync.runtime import build_runtime
    from web.app import create_app

    create_app(WebSettings())
    built = build_runtime(Settings(_env_file=None, database_url=runtime.settings.database_url,
                                   redis_url=hung_redis.url()))
    built.box = runtime.box
    headers, raw = signed(event_body())
    try:
        thread, result = _in_thread(lambda: receive_event(built, CollectingQueue(), str(tenants.alpha),
                                                          headers, raw))
        assert not thread.is_alive(), f"the webhook still waits on Redis after {HANGS_AFTER_S} s"
        assert result[0].status == 503
    finally:
        built.engine.dispose()
