"""Receiving a STARFACE bridge event (``POST /hooks/starface/{tenant_id}``; contract: starface-bridge.md).

Per request, in this order (fast: one Redis script, one broker publish, the tenant's row at most every
few seconds; no Graph, no PBX; an echo of our own writes is one Redis round trip in all):
1. Load the tenant named in the URL (kept for seconds in this process, known or not:
   sync/bridge_tenants.py). Unknown, or no bridge configured: the request is still verified, against a
   random secret no bridge has, so it gets exactly the 401 (same status, same body) a real bridge tenant
   gives a bad signature or timestamp: an unauthenticated caller cannot tell tenant ids with a bridge
   from the others. The real tenant's check is the same as before.
2. Verify the raw body with *this tenant's* bridge secret and *this tenant's* event-id store
   (connectors.starface.webhook): the signature is checked before the body is parsed, and a request signed
   with another tenant's secret fails here (401). An authentic, timely request whose body breaks the
   contract gets 400 naming the field: the bridge must not retry it, and the PBX admin must see why.
3. A replayed eventId: 202 ``{"duplicate": id}``, not enqueued again (the bridge delivers at least once).
   The id is recorded as pending first and confirmed once the event is queued; a delivery arriving while it
   is pending gets 503 with Retry-After 1 (the first delivery may still fail).
4. The echo of a write of ours (sync/echoes.py) needs no work: 202 ``{"ignored": id}``; its note is dropped
   and its id recorded as done in the one Redis round trip of step 3.
   Any other event goes to the events queue: 202 ``{"accepted": id}``. If the queue cannot take it, or
   anything else fails after the eventId was recorded: forget the eventId again, then 503, so the bridge's
   retry is accepted as new (an event is never lost to a "duplicate" answer). If Redis fails right then, so
   the id cannot be forgotten, it lapses unconfirmed after PENDING_EVENT_ID_TTL_S (30 s) and a later retry
   is new.

The answer is a `Receipt` (status, body, outcome for the metrics); the web app only sends it.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from sqlalchemy.exc import SQLAlchemyError

from connectors.starface import (
    StarfaceEvent,
    WebhookMalformed,
    WebhookRejected,
    WebhookReplayed,
    verify_signed_event,
)
from sync.bridge_probe import note_test_event
from sync.bridge_tenants import BridgeTenant
from sync.coordination import PENDING_EVENT_ID_TTL_S, EventIdPending, TenantEventIds
from sync.echoes import echo_note, forget_dnd_notes
from sync.ports import QueueUnavailable, TaskQueue
from sync.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """What the receiver answers: HTTP status, JSON body, headers, and the outcome counted in metrics."""

    status: int
    body: dict[str, str]
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)


#: Bridge events are a few hundred bytes; anything far larger is not one and is not read into memory.
MAX_BODY_BYTES = 64 * 1024
#: What the 503 suggests; the bridge keeps its own backoff within its 10-minute retry window.
RETRY_AFTER_S = 5
_MAX_TENANT_ID = 2**31 - 1
#: Verifies requests for unknown or bridge-less tenants: no bridge has it, so they fail like a bad signature.
_DECOY_SECRET = secrets.token_hex(32)


def _parse_tenant_id(raw: str) -> int | None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= _MAX_TENANT_ID else None


def _unavailable(what: str) -> Receipt:
    return Receipt(503, {"error": f"{what} is unavailable; retry later"}, "unavailable",
                   {"Retry-After": str(RETRY_AFTER_S)})


def receive_event(
    runtime: Runtime, queue: TaskQueue, tenant_ref: str, headers: dict[str, str], raw_body: bytes
) -> Receipt:
    """Steps 1-4 of the module docstring, synchronously (the web app runs it in its thread pool)."""
    received_at = datetime.now(UTC)
    tenant_id = _parse_tenant_id(tenant_ref)
    try:
        tenant, kept = (runtime.bridge_tenants.get(runtime, tenant_id) if tenant_id is not None
                        else (None, False))
    except SQLAlchemyError as exc:
        logger.error("webhook: cannot read tenant %r (%s); answered 503", tenant_ref[:20], type(exc).__name__)
        return _unavailable("the database")
    if tenant is None:
        return _decoy_rejection(tenant_ref, headers, raw_body)

    store = TenantEventIds(runtime.coordination, tenant.id)
    try:
        tenant, event = _verify(runtime, tenant, kept, headers, raw_body)
        # A test event and a disabled tenant's events need no work, echo or not: their notes stay.
        note = echo_note(event) if tenant.enabled and event.type != "test" else None
        echo = store.admit(event.event_id, note)
    except SQLAlchemyError as exc:
        logger.error("tenant %s: cannot read the bridge secret again (%s); answered 503", tenant.id,
                     type(exc).__name__)
        return _unavailable("the database")
    except WebhookReplayed as replay:
        logger.info("tenant %s: webhook event %s replayed; not processed again", tenant.id, replay.event_id)
        return Receipt(202, {"duplicate": replay.event_id}, "duplicate")
    except EventIdPending as pending:  # an earlier delivery may yet fail: this one must not be the 202
        logger.info("tenant %s: webhook event %s arrived again while being queued; retry asked",
                    tenant.id, pending.event_id)
        return Receipt(503, {"error": f"event {pending.event_id} is being queued; retry later"}, "pending",
                       {"Retry-After": "1"})
    except WebhookMalformed as malformed:
        logger.warning("tenant %s: malformed webhook body: %s", tenant.id, malformed.reason)
        return Receipt(400, {"error": malformed.reason}, "malformed")
    except WebhookRejected as rejected:
        logger.warning("tenant %s: webhook rejected: %s", tenant.id, rejected.reason)
        return Receipt(401, {"error": rejected.reason}, "rejected")
    except redis.RedisError as exc:
        logger.error("tenant %s: event-id store unreachable (%s); webhook refused",
                     tenant.id, type(exc).__name__)
        return _unavailable("the event-id store")

    try:
        if event.type == "test":  # contract 1.1 sendTestEvent: note the arrival for `bridge verify`, no work
            receipt = Receipt(202, note_test_event(runtime.coordination, tenant.id, event, received_at),
                              "ignored")
        elif not tenant.enabled:
            logger.info("tenant %s is disabled; webhook event %s ignored", tenant.id, event.event_id)
            receipt = Receipt(202, {"ignored": event.event_id, "reason": "tenant is disabled"}, "ignored")
        elif echo:  # its note is dropped and its id kept as done, in the round trip that recorded the id
            logger.debug("tenant %s: webhook event %s echoes a write of ours", tenant.id, event.event_id)
            return Receipt(202, {"ignored": event.event_id, "reason": "echo of a TeamsConnect write"}, "echo")
        else:
            forget_dnd_notes(runtime.coordination, tenant.id, event)
            receipt = _enqueue(queue, store, tenant.id, event, received_at)
    except Exception as exc:  # the id is recorded: whatever failed, the bridge's retry must count as new
        _forget(store, tenant.id, event.event_id)
        logger.error("tenant %s: webhook event %s failed after its id was recorded (%s); id forgotten, "
                     "answered 503 so the bridge retries", tenant.id, event.event_id, type(exc).__name__)
        return _unavailable("the event receiver")
    if receipt.status == 202:
        _confirm(store, tenant.id, event.event_id)
    return receipt


def _verify(runtime: Runtime, tenant: BridgeTenant, kept: bool, headers: dict[str, str],
            raw_body: bytes) -> tuple[BridgeTenant, StarfaceEvent]:
    """``verify_signed_event`` with the tenant's secret; a request that fails a secret kept in this process
    is checked against the stored one, so a rotated secret counts at once (sync/bridge_tenants.py)."""
    try:
        return tenant, verify_signed_event(tenant.bridge_secret, headers, raw_body, now=time.time())
    except WebhookRejected:
        if not kept:
            raise
        stored = runtime.bridge_tenants.reload(runtime, tenant.id)
        if stored is None or stored.bridge_secret == tenant.bridge_secret:
            raise
    return stored, verify_signed_event(stored.bridge_secret, headers, raw_body, now=time.time())


def _decoy_rejection(tenant_ref: str, headers: dict[str, str], raw_body: bytes) -> Receipt:
    """The answer for an unknown or bridge-less tenant: the same checks and 401 a bad signature gets."""
    reason = "signature does not match; the bridge secret in the module instance differs from the tenant's"
    try:
        verify_signed_event(_DECOY_SECRET, headers, raw_body, now=time.time())
    except WebhookRejected as rejected:
        reason = rejected.reason
    except WebhookMalformed:  # pragma: no cover - needs the decoy secret's signature
        pass
    logger.info("webhook for unknown or bridge-less tenant %r refused", tenant_ref[:20])
    return Receipt(401, {"error": reason}, "unknown_tenant")


def _enqueue(
    queue: TaskQueue, store: TenantEventIds, tenant_id: int, event: StarfaceEvent, received_at: datetime,
) -> Receipt:
    try:
        queue.starface_event(tenant_id, event, received_at)
    except QueueUnavailable as exc:
        _forget(store, tenant_id, event.event_id)
        logger.error("tenant %s: broker refused webhook event %s (%s); answered 503 so the bridge retries",
                     tenant_id, event.event_id, exc)
        return _unavailable("the event queue")
    logger.debug("tenant %s: webhook event %s (%s) enqueued", tenant_id, event.event_id, event.type)
    return Receipt(202, {"accepted": event.event_id}, "accepted")


def _confirm(store: TenantEventIds, tenant_id: int, event_id: str) -> None:
    """Keeps the id of a handled event for an hour (recorded, it lasts only PENDING_EVENT_ID_TTL_S)."""
    try:
        store.confirm(event_id)
    except redis.RedisError as exc:  # handled all the same; a replay after 30 s is processed again (a fact)
        logger.warning("tenant %s: could not keep event id %s (%s); a replay of it after %s s is processed "
                       "again", tenant_id, event_id, type(exc).__name__, PENDING_EVENT_ID_TTL_S)


def _forget(store: TenantEventIds, tenant_id: int, event_id: str) -> None:
    """Takes the id back so the retry counts as new. If that fails, the id lapses after
    PENDING_EVENT_ID_TTL_S (it was never confirmed), and the bridge's next retry is accepted."""
    try:
        store.discard(event_id)
    except redis.RedisError as exc:
        logger.error("tenant %s: could not forget event id %s (%s); its retry will look like a replay",
                     tenant_id, event_id, type(exc).__name__)
