"""The STARFACE bridge's webhook: ``POST /hooks/starface/{tenant_id}`` (contract: starface-bridge.md, Events).

Per request, in this order (fast: one row read, one Redis SET NX, one broker publish; no Graph, no PBX):
1. Load the tenant named in the URL. Unknown, or no bridge configured: 404, with the same text for both,
   so an unauthenticated caller learns nothing about which tenants exist.
2. Verify the raw body with *this tenant's* bridge secret and *this tenant's* event-id store
   (connectors.starface.webhook): the signature is checked before the body is parsed, and a request signed
   with another tenant's secret fails here (401). An authentic, timely request whose body breaks the
   contract gets 400 naming the field: the bridge must not retry it, and the PBX admin must see why.
3. A replayed eventId: 202 ``{"duplicate": id}``, not enqueued again (the bridge delivers at least once).
4. Enqueue with ``workers.enqueue.enqueue_starface_event``: 202 ``{"accepted": id}``. If the broker cannot
   take it: forget the eventId again, then 503, so the bridge's retry is accepted as new.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from starlette.concurrency import run_in_threadpool

from connectors.starface import (
    StarfaceEvent,
    WebhookMalformed,
    WebhookRejected,
    WebhookReplayed,
    verify_webhook,
)
from models import Tenant
from models.secrets import read_secrets
from scheduler.budget import TenantEventIds
from web.metrics import WebMetrics
from workers.enqueue import enqueue_starface_event
from workers.runtime import Runtime, get_runtime

logger = logging.getLogger(__name__)

router = APIRouter()

#: Bridge events are a few hundred bytes; anything far larger is not one and is not read into memory.
MAX_BODY_BYTES = 64 * 1024
#: What the 503 suggests; the bridge keeps its own backoff within its 10-minute retry window.
RETRY_AFTER_S = 5
_MAX_TENANT_ID = 2**31 - 1


@dataclass(frozen=True)
class _BridgeTenant:
    """What the receiver needs of a tenant, read in one short session (the secret stays in this process)."""

    id: int
    enabled: bool
    bridge_secret: str

    def __repr__(self) -> str:
        return f"_BridgeTenant(id={self.id!r}, enabled={self.enabled!r})"


def _answer(status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def _parse_tenant_id(raw: str) -> int | None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= _MAX_TENANT_ID else None


def _load_bridge_tenant(runtime: Runtime, tenant_id: int) -> _BridgeTenant | None:
    with runtime.sessions() as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or not tenant.has_bridge:
            return None
        secret = read_secrets(tenant, runtime.box).bridge_secret
        if not secret:
            return None
        return _BridgeTenant(id=tenant.id, enabled=tenant.enabled, bridge_secret=secret)


def _not_found(tenant_ref: str) -> JSONResponse:
    return _answer(404, {"error": f"no tenant with a STARFACE bridge configured has the id {tenant_ref!r}"})


def _unavailable(what: str) -> JSONResponse:
    return _answer(503, {"error": f"{what} is unavailable; retry later"}, {"Retry-After": str(RETRY_AFTER_S)})


def handle_starface_event(
    runtime: Runtime, metrics: WebMetrics, tenant_ref: str, headers: dict[str, str], raw_body: bytes
) -> JSONResponse:
    """Steps 1-4 of the module docstring, synchronously (runs in the thread pool)."""
    received_at = datetime.now(UTC)
    tenant_id = _parse_tenant_id(tenant_ref)
    tenant = _load_bridge_tenant(runtime, tenant_id) if tenant_id is not None else None
    if tenant is None:
        metrics.count_webhook("unknown_tenant")
        logger.info("webhook for unknown or bridge-less tenant %r refused", tenant_ref[:20])
        return _not_found(tenant_ref[:20])

    store = TenantEventIds(runtime.coordination, tenant.id)
    now = time.time()
    try:
        event = verify_webhook(tenant.bridge_secret, headers, raw_body, now=now, seen=store)
    except WebhookReplayed as replay:
        metrics.count_webhook("duplicate")
        logger.info("tenant %s: webhook event %s replayed; not processed again", tenant.id, replay.event_id)
        return _answer(202, {"duplicate": replay.event_id})
    except WebhookMalformed as malformed:
        metrics.count_webhook("malformed")
        logger.warning("tenant %s: malformed webhook body: %s", tenant.id, malformed.reason)
        return _answer(400, {"error": malformed.reason})
    except WebhookRejected as rejected:
        metrics.count_webhook("rejected")
        logger.warning("tenant %s: webhook rejected: %s", tenant.id, rejected.reason)
        return _answer(401, {"error": rejected.reason})
    except redis.RedisError as exc:
        metrics.count_webhook("unavailable")
        logger.error("tenant %s: event-id store unreachable (%s); webhook refused",
                     tenant.id, type(exc).__name__)
        return _unavailable("the event-id store")

    if not tenant.enabled:
        metrics.count_webhook("ignored")
        logger.info("tenant %s is disabled; webhook event %s ignored", tenant.id, event.event_id)
        return _answer(202, {"ignored": event.event_id, "reason": "tenant is disabled"})
    return _enqueue(metrics, store, tenant.id, event, received_at)


def _enqueue(
    metrics: WebMetrics, store: TenantEventIds, tenant_id: int, event: StarfaceEvent,
    received_at: datetime,
) -> JSONResponse:
    try:
        enqueue_starface_event(tenant_id, event, received_at)
    except (BrokerError, OSError) as exc:
        metrics.count_webhook("unavailable")
        _forget(store, tenant_id, event.event_id)
        logger.error("tenant %s: broker refused webhook event %s (%s); answered 503 so the bridge retries",
                     tenant_id, event.event_id, type(exc).__name__)
        return _unavailable("the event queue")
    metrics.count_webhook("accepted")
    logger.debug("tenant %s: webhook event %s (%s) enqueued", tenant_id, event.event_id, event.type)
    return _answer(202, {"accepted": event.event_id})


def _forget(store: TenantEventIds, tenant_id: int, event_id: str) -> None:
    """Takes the id back so the retry counts as new; if that fails, reconciliation covers the lost event."""
    try:
        store.discard(event_id)
    except redis.RedisError as exc:
        logger.error("tenant %s: could not forget event id %s (%s); its retry will look like a replay",
                     tenant_id, event_id, type(exc).__name__)


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None once it exceeds ``MAX_BODY_BYTES`` (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/hooks/starface/{tenant_id}", status_code=202)
async def receive_starface_event(tenant_id: str, request: Request) -> JSONResponse:
    """The bridge's webhook; see the module docstring."""
    raw_body = await _read_body(request)
    if raw_body is None:
        request.app.state.metrics.count_webhook("malformed")
        return _answer(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes is not a bridge event"})
    headers = {name.lower(): value for name, value in request.headers.items()}
    return await run_in_threadpool(
        handle_starface_event, get_runtime(), request.app.state.metrics, tenant_id, headers, raw_body
    )
