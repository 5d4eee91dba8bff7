"""The service's half of the bridge conformance check (`teamsconnect bridge verify`, contract 1.1).

The CLI asks the bridge to send a signed test event (``sendTestEvent`` with a random nonce); the web app's
receiver verifies it like any event and, for type "test", only notes its arrival here - a short-lived
coordination entry per tenant and nonce - and enqueues nothing. The CLI polls for that note with a
timeout. While a check runs, the tenant carries a "verifying" mark, so the rival-sync detector does not
count the check's own chat-text and telephony round trips as another integration's writes.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from typing import Any

from connectors.starface import StarfaceEvent
from sync.coordination import Coordination

#: How long an arrived test event is remembered (the CLI waits far less).
TEST_EVENT_TTL_S = 120.0
#: How long a "verifying" mark outlives a crashed check.
VERIFY_MARK_TTL_S = 120.0
_VERIFYING = "bridge-verify"


def _note_name(nonce: str) -> str:
    return "bridge-test:" + hashlib.sha256(nonce.encode("utf-8")).hexdigest()[:32]


def note_test_event(coordination: Coordination, tenant_id: int, event: StarfaceEvent,
                    received_at: datetime) -> dict[str, str]:
    """Records that a verified test event arrived; the receiver answers 202 with the returned body."""
    nonce = event.nonce or ""
    arrival = {"eventId": event.event_id, "occurredAt": event.occurred_at.timestamp(),
               "receivedAt": received_at.timestamp()}
    coordination.note(tenant_id, _note_name(nonce), json.dumps(arrival), TEST_EVENT_TTL_S)
    return {"test": event.event_id}


def wait_test_event(coordination: Coordination, tenant_id: int, nonce: str,
                    timeout: float) -> dict[str, Any] | None:
    """Polls for the test event with ``nonce`` until ``timeout`` seconds have passed; None if it did not
    arrive (or arrived unverified: only verified events are noted)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = coordination.read_note(tenant_id, _note_name(nonce))
        if raw is not None:
            return dict(json.loads(raw))
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)  # polling interval of a condition with a deadline


def mark_verifying(coordination: Coordination, tenant_id: int, on: bool) -> None:
    """Marks a check as running; at its end the mark keeps the end time a while, because the events of
    its round trips are processed after it (asynchronously)."""
    coordination.note(tenant_id, _VERIFYING, "running" if on else repr(time.time()), VERIFY_MARK_TTL_S)


def is_verifying(coordination: Coordination, tenant_id: int, occurred_at: float | None = None) -> bool:
    """True while a check runs, or for a change that occurred (PBX clock) before it ended (+0.5 s)."""
    mark = coordination.read_note(tenant_id, _VERIFYING)
    if mark is None:
        return False
    if mark == "running" or occurred_at is None:
        return True
    return occurred_at <= float(mark) + 0.5
