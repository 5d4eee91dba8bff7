"""The STARFACE bridge's webhook: ``POST /hooks/starface/{tenant_id}``; the receiving itself (tenant,
signature, event id, queue) is sync/webhook.py. Here: the body size limit, the thread pool, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sync.runtime import get_runtime
from sync.webhook import MAX_BODY_BYTES, receive_event
from workers.task_queue import CELERY_QUEUE

router = APIRouter()


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
        too_big = f"body larger than {MAX_BODY_BYTES} bytes is not a bridge event"
        return JSONResponse(status_code=413, content={"error": too_big})
    headers = {name.lower(): value for name, value in request.headers.items()}
    receipt = await run_in_threadpool(receive_event, get_runtime(), CELERY_QUEUE, tenant_id, headers,
                                      raw_body)
    request.app.state.metrics.count_webhook(receipt.outcome)
    return JSONResponse(status_code=receipt.status, content=receipt.body, headers=receipt.headers or None)
