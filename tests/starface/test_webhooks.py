"""Webhooks: verification (signature, skew, replay, body) and the simulator's signed, at-least-once events."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.starface import (
    ChatPresence,
    InMemoryEventIdStore,
    StarfaceBridgeClient,
    StarfaceEvent,
    StarfaceRestClient,
    TelephonyState,
    WebhookRejected,
    WebhookReplayed,
    sign,
    verify_webhook,
)
from simulators.starface import StarfaceSimControl, StarfaceSimulator
from simulators.starface._webhooks import _Poster
from tests.starface.conftest import BOB, BRIDGE_SECRET, Received, WebhookReceiver

NOW = 1_764_150_000.0
BODY = json.dumps(
    {
        "eventId": "3b1f0c1e-0000-4000-8000-000000000001",
        "type": "dnd",
        "account": BOB,
        "login": "1101",
        "occurredAt": 1_764_150_000_123,
        "dnd": True,
        "origin": "user",
    }
).encode()


def _headers(body: bytes = BODY, timestamp: int = int(NOW), secret: str = BRIDGE_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-TeamsConnect-Timestamp": str(timestamp),
        "X-TeamsConnect-Signature": sign(secret, str(timestamp), body),
    }


def _verify(post: Received, store: InMemoryEventIdStore) -> StarfaceEvent:
    return verify_webhook(BRIDGE_SECRET, post.headers, post.body, now=time.time(), seen=store)


def test_it_accepts_a_good_webhook() -> None:
    event = verify_webhook(BRIDGE_SECRET, _headers(), BODY, now=NOW, seen=InMemoryEventIdStore())
    assert event == StarfaceEvent(
        event_id="3b1f0c1e-0000-4000-8000-000000000001",
        type="dnd",
        account=BOB,
        login="1101",
        occurred_at=datetime(2025, 11, 26, 9, 40, 0, 123000, tzinfo=UTC),
        origin="user",
        dnd=True,
    )


def test_it_rejects_a_bad_signature_without_recording_the_event() -> None:
    store = InMemoryEventIdStore()
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(BRIDGE_SECRET, _headers(secret="another-tenants-secret"), BODY, now=NOW, seen=store)
    assert "signature does not match" in caught.value.reason
    assert store.add_if_new("3b1f0c1e-0000-4000-8000-000000000001")  # nothing was recorded


def test_it_rejects_a_tampered_body() -> None:
    tampered = BODY.replace(b'"dnd": true', b'"dnd": false')
    assert tampered != BODY
    with pytest.raises(WebhookRejected, match="signature"):
        verify_webhook(BRIDGE_SECRET, _headers(), tampered, now=NOW, seen=InMemoryEventIdStore())


@pytest.mark.parametrize("offset", [301, -301])
def test_it_rejects_a_skewed_timestamp(offset: int) -> None:
    headers = _headers(timestamp=int(NOW) + offset)
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(BRIDGE_SECRET, headers, BODY, now=NOW, seen=InMemoryEventIdStore())
    assert "301 s away" in caught.value.reason


def test_it_accepts_a_timestamp_just_within_the_skew() -> None:
    headers = _headers(timestamp=int(NOW) - 300)
    assert verify_webhook(BRIDGE_SECRET, headers, BODY, now=NOW, seen=InMemoryEventIdStore()).dnd is True


def test_it_reports_a_replayed_event_id() -> None:
    store = InMemoryEventIdStore()
    verify_webhook(BRIDGE_SECRET, _headers(), BODY, now=NOW, seen=store)
    with pytest.raises(WebhookReplayed) as caught:
        verify_webhook(BRIDGE_SECRET, _headers(timestamp=int(NOW) + 5), BODY, now=NOW + 5, seen=store)
    assert caught.value.event_id == "3b1f0c1e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "call"}, "type"),
        ({"dnd": None}, "a dnd event needs dnd"),
        ({"origin": "pbx"}, "origin"),
        ({"occurredAt": "yesterday"}, "occurredAt"),
    ],
)
def test_it_rejects_a_body_that_is_not_a_contract_event(change: dict, reason: str) -> None:
    payload = {**json.loads(BODY), **change}
    body = json.dumps({k: v for k, v in payload.items() if v is not None}).encode()
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(BRIDGE_SECRET, _headers(body), body, now=NOW, seen=InMemoryEventIdStore())
    assert reason in caught.value.reason


def test_it_rejects_missing_headers() -> None:
    with pytest.raises(WebhookRejected, match="X-TeamsConnect-Timestamp"):
        verify_webhook(BRIDGE_SECRET, {}, BODY, now=NOW, seen=InMemoryEventIdStore())


@pytest.mark.parametrize("timestamp", ["\u00b2", "\u0661\u0667\u0666\u0664", "-5", "1.5e9"])
def test_it_rejects_a_timestamp_that_is_not_ascii_digits(timestamp: str) -> None:
    headers = {**_headers(), "X-TeamsConnect-Timestamp": timestamp}
    with pytest.raises(WebhookRejected, match="non-numeric"):
        verify_webhook(BRIDGE_SECRET, headers, BODY, now=NOW, seen=InMemoryEventIdStore())


def test_a_simulated_call_produces_ringing_active_available_in_order(
    control: StarfaceSimControl, receiver: WebhookReceiver
) -> None:
    control.ring("1101")
    control.answer("1101")
    control.hang_up("1101")

    posts = receiver.wait_for(lambda got: len(got) >= 3)

    store = InMemoryEventIdStore()
    events = [_verify(p, store) for p in posts]
    assert [e.telephony_state for e in events] == [
        TelephonyState.RINGING,
        TelephonyState.ACTIVE,
        TelephonyState.AVAILABLE,
    ]
    assert {(e.type, e.account, e.origin) for e in events} == {("telephony", BOB, "user")}
    assert events[0].occurred_at <= events[1].occurred_at <= events[2].occurred_at


def test_a_call_event_overtakes_the_dnd_and_chat_events_queued_before_it(
    control: StarfaceSimControl, receiver: WebhookReceiver
) -> None:
    """docs/starface-bridge.md: the bridge's one sender thread sends due call events first, so a call is
    not held up behind the events of a burst of our own DND and chat writes."""
    receiver.answering.clear()  # the service is slow: the first POST is held, the rest queue up
    control.toggle_dnd_by_hand("1101", True)
    receiver.wait_for(lambda got: len(got) == 1)
    for on in (False, True, False, True):
        control.toggle_dnd_by_hand("1101", on)
    control.ring("1101")
    receiver.answering.set()
    posts = receiver.wait_for(lambda got: len(got) == 6)
    assert [json.loads(p.body)["type"] for p in posts] == ["dnd", "telephony", "dnd", "dnd", "dnd", "dnd"]
    dnds = [json.loads(p.body)["dnd"] for p in posts if json.loads(p.body)["type"] == "dnd"]
    assert dnds == [True, False, True, False, True]  # the others still in the order they happened


def test_it_refuses_an_impossible_call_step(control: StarfaceSimControl) -> None:
    with pytest.raises(RuntimeError, match="409"):
        control.answer("1101")  # nothing rings


def test_writes_through_rest_and_bridge_raise_integration_events(
    rest: StarfaceRestClient,
    bridge: StarfaceBridgeClient,
    control: StarfaceSimControl,
    receiver: WebhookReceiver,
) -> None:
    rest.set_dnd(BOB, True)
    bridge.set_chat_status(BOB, ChatPresence.AWAY, "In a Teams meeting")
    control.app_overwrites_chat("1101", "AVAILABLE", "")

    posts = receiver.wait_for(lambda got: len(got) >= 3)

    store = InMemoryEventIdStore()
    events = sorted((_verify(p, store) for p in posts), key=lambda e: e.occurred_at)
    assert [(e.type, e.origin) for e in events] == [
        ("dnd", "integration"),
        ("presence", "integration"),
        ("presence", "user"),
    ]
    assert (events[1].chat_presence, events[1].chat_presence_message) == (
        ChatPresence.AWAY,
        "In a Teams meeting",
    )


def test_it_retries_a_webhook_answered_with_non_2xx(
    control: StarfaceSimControl, receiver: WebhookReceiver
) -> None:
    receiver.status = 503
    control.toggle_dnd_by_hand("1101", True)
    receiver.wait_for(lambda got: len(got) >= 2)  # first try and at least one retry
    receiver.status = 202

    control.wait_webhooks_idle()

    attempts = control.webhooks()["attempts"]
    assert [a["status"] for a in attempts][:2] == [503, 503]
    assert attempts[-1]["status"] == 202 and attempts[-1]["attempt"] >= 3
    assert len({a["eventId"] for a in attempts}) == 1


def test_it_delivers_duplicates_that_verification_reports_as_replayed(
    control: StarfaceSimControl, receiver: WebhookReceiver
) -> None:
    control.set_webhook(duplicate_rate=1.0)
    control.toggle_dnd_by_hand("1101", True)
    control.wait_webhooks_idle()

    posts = receiver.wait_for(lambda got: len(got) == 2)

    store = InMemoryEventIdStore()
    first = _verify(posts[0], store)
    with pytest.raises(WebhookReplayed) as caught:
        _verify(posts[1], store)
    assert caught.value.event_id == first.event_id


def test_a_pbx_without_bridge_sends_no_events(seed: dict) -> None:
    del seed["bridge"]
    with StarfaceSimulator(seed) as sim:
        control = StarfaceSimControl(sim.base_url)
        control.toggle_dnd_by_hand("1101", True)
        assert control.webhooks()["installed"] is False
        assert control.user_state("1101")["dnd"] is True
        control.close()


def test_the_simulated_bridge_keeps_one_idle_connection_whichever_thread_posts() -> None:
    """sendTestEvent runs on the control API's threads, one per request: each used to keep a connection of
    its own for good. A connection the receiver closed while idle is replaced, not used."""
    connections: set[tuple[str, int]] = set()
    closed = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            connections.add(self.client_address)  # one client address per TCP connection
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            # closed afterwards without saying so, as a server does with a connection left idle too long
            self.close_connection = self.headers.get("X-Test-Close") == "yes"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def shutdown_request(self, request: Any) -> None:
            super().shutdown_request(request)
            closed.set()

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/starface/1"
    poster = _Poster(timeout_s=5.0, verify=True)
    try:
        answers: list[int] = []
        for _ in range(5):
            thread = threading.Thread(target=lambda: answers.append(poster.post(url, b"{}", {})[0]))
            thread.start()
            thread.join()
        assert answers == [202] * 5
        assert len(connections) == 1 and poster.idle_connections() == 1

        assert poster.post(url, b"{}", {"X-Test-Close": "yes"})[0] == 202
        assert closed.wait(timeout=5)
        assert poster.post(url, b"{}", {})[0] == 202  # on a new connection, not the closed one
        assert len(connections) == 2 and poster.idle_connections() == 1
    finally:
        poster.close()
        server.shutdown()
        server.server_close()
