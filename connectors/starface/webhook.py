"""Verification of the bridge's signed webhooks, for the web app's `/hooks/starface/{tenant_id}` route.

`verify_webhook` checks, in this order, and changes nothing until every check has passed:
1. the timestamp header is an integer within `MAX_SKEW_S` of our clock,
2. the signature is `sha256=` + HMAC-SHA256(bridge_secret, timestamp + "." + raw_body) (constant time),
3. the body is a contract v1 event (type-specific fields present, enums known),
4. the eventId is new: only now is it recorded in the `EventIdStore`.
Steps 1-3 fail with `WebhookRejected(reason)`: answer 401 (the contract) with the reason. Step 4 fails
with `WebhookReplayed`: answer 202 and do not process again (the bridge delivers at least once).

The secret is the tenant's, looked up from the tenant id in the URL, so a request signed for one tenant
never verifies for another. The store must therefore be namespaced per tenant (e.g. a Redis key
`starface:event:{tenant_id}:{event_id}` with SET NX and a TTL longer than the bridge's 10-minute retry
window plus `MAX_SKEW_S`). If enqueueing the verified event fails afterwards, answer 5xx and delete the
id, so the bridge's retry is not mistaken for a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from connectors.starface._errors import WebhookMalformed, WebhookRejected, WebhookReplayed
from connectors.starface._models import ChatPresence, StarfaceEvent, TelephonyState

MAX_SKEW_S = 300
SIGNATURE_HEADER = "X-TeamsConnect-Signature"
TIMESTAMP_HEADER = "X-TeamsConnect-Timestamp"
EVENT_ID_TTL_S = 3600  # > 10 min retry window + skew; what a Redis store should use as TTL


class EventIdStore(Protocol):
    def add_if_new(self, event_id: str) -> bool:
        """Records the id; True if it was not recorded before (atomic: Redis SET NX EX)."""
        ...


class InMemoryEventIdStore:
    """An `EventIdStore` for tests and single-process use; forgets ids after `ttl_s`."""

    def __init__(self, ttl_s: float = EVENT_ID_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_if_new(self, event_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self._ttl_s}
            seen_at = self._seen.get(event_id)
            if seen_at is not None and now - seen_at < self._ttl_s:
                return False
            self._seen[event_id] = now
            return True

    def discard(self, event_id: str) -> None:
        with self._lock:
            self._seen.pop(event_id, None)


class _EventBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    eventId: str
    type: Literal["telephony", "dnd", "presence", "test"]
    account: int = 0
    login: str = ""
    occurredAt: int
    origin: Literal["user", "integration"]
    telephonyState: TelephonyState | None = None
    dnd: bool | None = None
    chatPresence: ChatPresence | None = None
    chatPresenceMessage: str | None = None
    nonce: str | None = None

    @model_validator(mode="after")
    def _type_fields_present(self) -> _EventBody:
        if not self.eventId.strip():
            raise ValueError("eventId is empty")
        needed = {"telephony": ("telephonyState",), "dnd": ("dnd",), "presence": ("chatPresence",),
                  "test": ("nonce",)}[self.type]
        missing = [name for name in needed if not getattr(self, name) and getattr(self, name) is not False]
        if self.type != "test":  # a user's event names the user; a test event (contract 1.1) needs none
            missing += [name for name in ("account", "login") if name not in self.model_fields_set]
        if missing:
            raise ValueError(f"a {self.type} event needs {', '.join(missing)}")
        return self


def sign(secret: str, timestamp: str, raw_body: bytes) -> str:
    """The signature header value the contract prescribes (also used by tests that forge requests)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + raw_body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_webhook(
    secret: str, headers: Mapping[str, str], raw_body: bytes, *, now: float, seen: EventIdStore
) -> StarfaceEvent:
    """Verifies and parses one webhook; see the module docstring for the checks and how to answer."""
    timestamp = (_header(headers, TIMESTAMP_HEADER) or "").strip()
    if not (timestamp.isascii() and timestamp.isdigit()):  # isdigit alone lets "²" through to int()
        raise WebhookRejected(f"missing or non-numeric {TIMESTAMP_HEADER} header (unix seconds expected)")
    skew = abs(now - int(timestamp))
    if skew > MAX_SKEW_S:
        raise WebhookRejected(
            f"timestamp is {int(skew)} s away from the service clock (at most {MAX_SKEW_S} "
            "s allowed); check the PBX clock (NTP)"
        )
    signature = (_header(headers, SIGNATURE_HEADER) or "").strip().lower()
    if not signature.startswith("sha256="):
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header of the form sha256=<hex>")
    if not hmac.compare_digest(signature, sign(secret, timestamp, raw_body)):
        raise WebhookRejected(
            "signature does not match; the bridge secret in the module instance differs from the tenant's"
        )
    try:
        body = _EventBody.model_validate_json(raw_body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise WebhookMalformed(f"body is not a contract v1 event: {field}: {first['msg']}") from exc
    if not seen.add_if_new(body.eventId):
        raise WebhookReplayed(body.eventId)
    return StarfaceEvent(
        event_id=body.eventId,
        type=body.type,
        account=body.account,
        login=body.login,
        occurred_at=datetime.fromtimestamp(body.occurredAt / 1000, tz=UTC),
        origin=body.origin,
        telephony_state=body.telephonyState if body.type == "telephony" else None,
        dnd=body.dnd if body.type == "dnd" else None,
        chat_presence=body.chatPresence if body.type == "presence" else None,
        chat_presence_message=(body.chatPresenceMessage or "") if body.type == "presence" else None,
        nonce=body.nonce if body.type == "test" else None,
    )
