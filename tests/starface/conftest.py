"""Fixtures: a simulated PBX on a free 127.0.0.1 port, its control client, connector clients, and a
webhook receiver standing in for the web app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.starface import StarfaceBridgeClient, StarfaceRestClient
from simulators.starface import StarfaceSimControl, StarfaceSimulator, make_seed

ADMIN_LOGIN, ADMIN_PASSWORD = "0001", "service-pass"
BRIDGE_SECRET = "bridge-secret-for-tests"
ALICE, BOB = 100, 101  # account ids from make_seed; logins "1100", "1101"; password "pw-<login>"


@pytest.fixture
def seed() -> dict[str, Any]:
    data = make_seed(4, admin_password=ADMIN_PASSWORD, bridge_secret=BRIDGE_SECRET)
    bob = next(u for u in data["users"] if u["id"] == BOB)
    bob["phoneConfig"] = {"callWaiting": False, "displayNumberId": 4711, "primaryPhoneId": 815}
    return data


@pytest.fixture
def sim(seed: dict[str, Any]) -> Iterator[StarfaceSimulator]:
    with StarfaceSimulator(seed, webhook_retry_base_s=0.02, rng_seed=1) as running:
        yield running


@pytest.fixture
def control(sim: StarfaceSimulator) -> Iterator[StarfaceSimControl]:
    client = StarfaceSimControl(sim.base_url)
    yield client
    client.close()


@pytest.fixture
def rest(sim: StarfaceSimulator) -> Iterator[StarfaceRestClient]:
    with StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, timeout=2.0) as client:
        yield client


@pytest.fixture
def bridge(sim: StarfaceSimulator) -> Iterator[StarfaceBridgeClient]:
    with StarfaceBridgeClient(
        sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, secret=BRIDGE_SECRET, timeout=2.0
    ) as c:
        yield c


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """The web app's side of the webhook: records every POST and answers with `status` (202 unless set)."""

    url: str = ""
    status: int = 202
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answering: threading.Event = field(default_factory=threading.Event)  # cleared: each POST waits for it

    def __post_init__(self) -> None:
        self.answering.set()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                snapshot = list(self.received)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook condition not met in {timeout} s; got {len(snapshot)} posts")
            time.sleep(0.01)  # polling interval of a condition with a deadline


@pytest.fixture
def receiver(control: StarfaceSimControl) -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with hook.lock:
                hook.received.append(Received(dict(self.headers.items()), body))
                status = hook.status
            hook.answering.wait(timeout=10)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/starface/tenant-a"
    control.set_webhook(hook.url)
    yield hook
    server.shutdown()
    server.server_close()
