"""Verification of the bridge's signed webhooks, for the web app's `/hooks/starface/{tenant_id}` route.

`verify_webhook` checks, in this order, and changes nothing until every check has passed:
1. the timestamp header is an integer of at most `MAX_TIMESTAMP_DIGITS` digits (checked on the text,
   before any number is made of it) within `MAX_SKEW_S` of our clock,
2. the signature is `sha256=` + HMAC-SHA256(bridge_secret, timestamp + "." + raw_body) (constant time),
3. the body is a contract v1 event (type-specific fields present, enums known, every number within what
   the event can carry: `account` a 32-bit STARFACE id, `occurredAt` a real date, `eventId` at most
   `MAX_EVENT_ID_CHARS` printable characters) and the typed event is built from it,
4. the eventId is new: only now, when nothing can fail any more, is it recorded in the `EventIdStore`.
`verify_signed_event` does steps 1-3 alone, for a receiver that records the id together with work of its own
(the web app drops the note of an echo of our writes in the same round trip, sync/webhook.py).
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.starface._errors import WebhookMalformed, WebhookRejected, WebhookReplayed
from connectors.starface._models import ChatPresence, StarfaceEvent, TelephonyState

MAX_SKEW_S = 300
SIGNATURE_HEADER = "X-TeamsConnect-Signature"
TIMESTAMP_HEADER = "X-TeamsConnect-Timestamp"
EVENT_ID_TTL_S = 3600  # > 10 min retry window + skew; what a Redis store should use as TTL
#: Unix seconds have 10 digits until the year 2286; a longer header is not a timestamp (and a 5,000-digit
#: one would not even convert to an int), so it is refused on its length.
MAX_TIMESTAMP_DIGITS = 12
#: The bridge sends a UUID (36 characters); the id becomes a Redis key, so its size is bounded.
MAX_EVENT_ID_CHARS = 200
MAX_ACCOUNT_ID = 2**31 - 1  # STARFACE account ids are 32-bit (the user_link column is INTEGER)
MAX_LOGIN_CHARS = 100  # as the user_link.login_id column
MAX_MESSAGE_CHARS = 1000
#: occurredAt (ms since epoch) from 1970 up to the last millisecond `datetime` can hold (year 9999).
MAX_OCCURRED_AT_MS = 253_402_300_799_999


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
    eventId: str = Field(max_length=MAX_EVENT_ID_CHARS)
    type: Literal["telephony", "dnd", "presence", "test"]
    account: int = Field(default=0, ge=0, le=MAX_ACCOUNT_ID)
    login: str = Field(default="", max_length=MAX_LOGIN_CHARS)
    occurredAt: int = Field(ge=0, le=MAX_OCCURRED_AT_MS)
    origin: Literal["user", "integration"]
    telephonyState: TelephonyState | None = None
    dnd: bool | None = None
    chatPresence: ChatPresence | None = None
    chatPresenceMessage: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    nonce: str | None = Field(default=None, max_length=MAX_EVENT_ID_CHARS)

    @field_validator("eventId")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("eventId is empty")
        if not (value.isascii() and value.isprintable()):
            raise ValueError("must be printable ASCII (the bridge sends a UUID)")
        return value

    @field_validator("login", "chatPresenceMessage")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        return value

    @model_validator(mode="after")
    def _type_fields_present(self) -> _EventBody:
        needed = {"telephony": ("telephonyState",), "dnd": ("dnd",), "presence": ("chatPresence",),
                  "test": ("nonce",)}[self.type]
        missing = [name for name in needed if getattr(self, name) is None]
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
    event = verify_signed_event(secret, headers, raw_body, now=now)
    if not seen.add_if_new(event.event_id):
        raise WebhookReplayed(event.event_id)
    return event


def verify_signed_event(
    secret: str, headers: Mapping[str, str], raw_body: bytes, *, now: float
) -> StarfaceEvent:
    """Steps 1-3 of the module docstring: the signed, timely, well-formed event; its id is not recorded."""
    timestamp = (_header(headers, TIMESTAMP_HEADER) or "").strip()
    # isdigit alone lets "²" through to int(); the length bound comes before int() of 5,000 digits fails
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
        raise WebhookRejected(
            f"missing, non-numeric or over-long {TIMESTAMP_HEADER} header (unix seconds expected, at most "
            f"{MAX_TIMESTAMP_DIGITS} digits)"
        )
    skew = abs(now - int(timestamp))
    if skew > MAX_SKEW_S:
        raise WebhookRejected(
            f"timestamp is {int(skew)} s away from the service clock (at most {MAX_SKEW_S} "
            "s allowed); check the PBX clock (NTP)"
        )
    signature = (_header(headers, SIGNATURE_HEADER) or "").strip().lower()
    if not signature.startswith("sha256="):
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header of the form sha256=<hex>")
    # compared as bytes: compare_digest refuses (TypeError) str with non-ASCII characters
    given = signature.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, sign(secret, timestamp, raw_body).encode("ascii")):
        raise WebhookRejected(
            "signature does not match; the bridge secret in the module instance differs from the tenant's"
        )
    try:
        body = _EventBody.model_validate_json(raw_body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise WebhookMalformed(f"body is not a contract v1 event: {field}: {first['msg']}") from exc
    try:
        event = _event_of(body)
    except (OverflowError, OSError, ValueError) as exc:  # a date the platform cannot represent
        raise WebhookMalformed(
            f"body is not a contract v1 event: occurredAt: not a usable date ({type(exc).__name__})"
        ) from exc
    return event


def _event_of(body: _EventBody) -> StarfaceEvent:
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
