"""The admin write API under ``/api`` (bearer token, as the read API in web/admin.py): everything the
console does - create, update, delete tenants; rules, user selection, secrets; enable/disable; dry run,
connection test, directory sync; the tenant's log lines and the record of changes.

Every change goes through tenants/audit.py (the tenant service, validated as a whole, plus the record of
the change with actor "api"). Every refusal is ``{"error": {"field", "message", "fix"}}``; nothing is half
saved. ``GET /api/openapi.json`` documents the read and write routes.
"""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from connectors.graph import GraphError
from connectors.starface import StarfaceError
from models import Tenant
from models.db import transaction
from presence.categories import Category
from sync.connection_test import run_connection_test
from sync.directory import sync_directory
from sync.dry_run import dry_run
from sync.ports import QueueUnavailable
from sync.runtime import get_runtime
from tenants import audit
from tenants.overview import mask_emails, tenant_detail
from tenants.schema import SECRET_FIELDS, TenantConfigError, parse_category
from tenants.service import TenantInUse
from web import admin
from web.console.forms import problems, split_problem
from workers.task_queue import CELERY_QUEUE
from workers.tenant_log import store_for

ACTOR = "api"
CHECK_TIMEOUT_S = 10.0
router = APIRouter(prefix="/api", dependencies=[Depends(admin.require_admin)], tags=["admin (write)"])

_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "field": {"type": "string"}, "message": {"type": "string"}, "fix": {"type": "string"}}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid input: the first problem, and all of them in `problems`",
          "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
    404: {"description": "no such tenant", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
}


def _json_body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema, "example": example}}}}


def error(status: int, field: str, message: str, fix: str = "") -> JSONResponse:
    problem = split_problem(field, message) if not fix else {"field": field, "message": message, "fix": fix}
    return JSONResponse(status_code=status, content={"error": problem, "problems": [problem]})


def config_error(exc: TenantConfigError) -> JSONResponse:
    found = problems(exc)
    return JSONResponse(status_code=400, content={"error": found[0], "problems": found})


class _Refused(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _Refused(error(400, "body", "is not valid JSON", "send a JSON object with "
                             "Content-Type: application/json")) from None
    if not isinstance(data, dict):
        raise _Refused(error(400, "body", "must be a JSON object", 'send e.g. {"name": "contoso"}'))
    return data


def _find(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise _Refused(error(404, "tenant_id", f"no tenant with id {tenant_id}",
                             "list the tenants with GET /api/tenants"))
    return tenant


def _detail(tenant_id: int) -> dict[str, Any]:
    runtime = get_runtime()
    with runtime.sessions() as session:
        tenant = _find(session, tenant_id)
        return jsonable(tenant_detail(session, tenant, runtime.settings.public_url, datetime.now(UTC)))


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _update(tenant_id: int, changes: dict[str, Any], action: str) -> JSONResponse:
    runtime = get_runtime()
    try:
        with transaction(runtime.sessions) as session:
            changed = audit.update(session, runtime.box, _find(session, tenant_id), changes, ACTOR, action)
    except TenantConfigError as exc:
        return config_error(exc)
    return JSONResponse({"changed": changed, "tenant": _detail(tenant_id)})


def _guarded(handler):  # type: ignore[no-untyped-def]
    """Turns a `_Refused` raised anywhere in the handler into its JSON answer. A plain (blocking) handler
    runs in the thread pool: database, Graph and PBX calls never stall the event loop that also answers the
    bridge's webhooks (contract: within 1 s)."""
    import functools

    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            if inspect.iscoroutinefunction(handler):
                return await handler(*args, **kwargs)
            return await run_in_threadpool(handler, *args, **kwargs)
        except _Refused as refused:
            return refused.response

    return run


_TENANT_EXAMPLE = {
    "name": "contoso",
    "microsoft": {"directory_id": "11111111-2222-3333-4444-555555555555",
                  "client_id": "66666666-7777-8888-9999-000000000000", "client_secret": "the secret's value"},
    "starface": {"base_url": "https://pbx.contoso.example", "login_id": "0001",
                 "password": "service account password",
                 "bridge": {"instance": "TeamsConnectBridge", "secret": "..."}},
}


@router.post("/tenants", status_code=201, responses=_ERRORS,
             openapi_extra=_json_body({"type": "object", "description": "a whole tenant definition "
                                       "(tenants/schema.py TenantConfig)"}, _TENANT_EXAMPLE))
@_guarded
async def create_tenant(request: Request) -> JSONResponse:
    """Creates a tenant (validated as a whole; secrets stored encrypted, never returned)."""
    return await run_in_threadpool(_create, await _body(request))


def _create(body: dict[str, Any]) -> JSONResponse:
    runtime = get_runtime()
    try:
        with transaction(runtime.sessions) as session:
            tenant_id = audit.create(session, runtime.box, body, ACTOR).id
    except TenantConfigError as exc:
        return config_error(exc)
    return JSONResponse(status_code=201, content={"tenant": _detail(tenant_id)})


@router.patch("/tenants/{tenant_id}", responses=_ERRORS, openapi_extra=_json_body(
    {"type": "object", "description": "partial change, nested or dotted keys"},
    {"options.set_chat_text": False, "poll_interval_s": 5}))
@_guarded
async def update_tenant(tenant_id: int, request: Request) -> JSONResponse:
    """Changes any settings (nested or dotted keys); the merged result is validated before anything is
    stored. Returns the names of the changed settings."""
    return await run_in_threadpool(_update, tenant_id, await _body(request), "settings changed")


@router.delete("/tenants/{tenant_id}", responses={**_ERRORS, 409: {"description": "outputs still set"}})
@_guarded
def delete_tenant(tenant_id: int, force: bool = False) -> JSONResponse:
    """Deletes the tenant; refused (409) while a DND, chat text or Teams session of ours is still set."""
    try:
        with transaction(get_runtime().sessions) as session:
            audit.delete(session, _find(session, tenant_id), ACTOR, force=force)
    except TenantInUse as exc:
        return error(409, "force", str(exc).split(". Disable")[0],
                     "disable it first (POST /api/tenants/{id}/disable) and wait for drift repair, or "
                     "send ?force=true")
    return JSONResponse({"deleted": tenant_id})


@router.put("/tenants/{tenant_id}/rules", responses=_ERRORS, openapi_extra=_json_body(
    {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "dnd": {"enum": ["set", "clear", "leave"]}, "chat_text": {"type": ["string", "null"]}}}},
    {"InACall": {"dnd": "set", "chat_text": "On a call in MS Teams"}}))
@_guarded
async def put_rules(tenant_id: int, request: Request) -> JSONResponse:
    """Sets rows of the status table (Teams category -> DND set/clear/leave and chat text)."""
    rules = {"rules": await _body(request)}
    return await run_in_threadpool(_update, tenant_id, rules, "status table changed")


@router.put("/tenants/{tenant_id}/rules/{category}", responses=_ERRORS, openapi_extra=_json_body(
    {"type": "object", "properties": {"dnd": {"enum": ["set", "clear", "leave"]},
                                      "chat_text": {"type": ["string", "null"]}}},
    {"dnd": "set", "chat_text": "Im Teams-Anruf"}))
@_guarded
async def put_rule(tenant_id: int, category: str, request: Request) -> JSONResponse:
    """Sets one row of the status table."""
    body = await _body(request)
    try:
        name = parse_category(category).value
    except TenantConfigError:
        return error(400, "category", f"unknown category {category!r}",
                     f"use one of {', '.join(c.value for c in Category)}")
    return await run_in_threadpool(_update, tenant_id, {"rules": {name: body}}, "status table changed")


@router.put("/tenants/{tenant_id}/selection", responses=_ERRORS, openapi_extra=_json_body(
    {"type": "object", "properties": {"mode": {"enum": ["all_except_listed", "group_plus_listed"]},
                                      "starface_group_id": {"type": ["integer", "null"]},
                                      "login_ids": {"type": "array", "items": {"type": "string"}}}},
    {"mode": "group_plus_listed", "starface_group_id": 3, "login_ids": ["1001"]}))
@_guarded
async def put_selection(tenant_id: int, request: Request) -> JSONResponse:
    """Sets which STARFACE users are synced (run POST .../sync afterwards to relink)."""
    return await run_in_threadpool(_update, tenant_id, {"selection": await _body(request)},
                                   "user selection changed")


@router.put("/tenants/{tenant_id}/secrets", responses=_ERRORS, openapi_extra=_json_body(
    {"type": "object", "properties": {path: {"type": "string"} for path in SECRET_FIELDS}},
    {"microsoft.client_secret": "the new secret's value"}))
@_guarded
async def put_secrets(tenant_id: int, request: Request) -> JSONResponse:
    """Replaces secrets (write-only: they are never returned or recorded, only that they were replaced)."""
    body = await _body(request)
    unknown = [key for key in body if key not in SECRET_FIELDS]
    if unknown:
        return error(400, unknown[0], "is not a secret setting", f"use {', '.join(SECRET_FIELDS)}")
    if not body:
        return error(400, "body", "names no secret", f"send one of {', '.join(SECRET_FIELDS)}")
    return await run_in_threadpool(_update, tenant_id, body, "credentials changed")


@router.post("/tenants/{tenant_id}/enable", responses=_ERRORS)
@_guarded
def enable(tenant_id: int) -> JSONResponse:
    return _update(tenant_id, {"enabled": True}, "tenant enabled")


@router.post("/tenants/{tenant_id}/disable", responses=_ERRORS)
@_guarded
def disable(tenant_id: int) -> JSONResponse:
    """Disables the tenant; drift repair releases what we set within 5 minutes."""
    return _update(tenant_id, {"enabled": False}, "tenant disabled")


@router.post("/tenants/{tenant_id}/dry-run", responses=_ERRORS)
@_guarded
def post_dry_run(tenant_id: int) -> JSONResponse:
    """What the first cycle would write now (live reads, nothing written)."""
    runtime = get_runtime()
    with runtime.sessions() as session:
        planned, message = dry_run(runtime, session, _find(session, tenant_id))
    if message and not planned:
        return error(502, "dry_run", message, "run POST .../test to see which side fails")
    # A message beside the writes: some users' DND could not be read in time (dnd_write "unknown").
    return JSONResponse({"writes": [vars(p) for p in planned], "incomplete": message})


@router.post("/tenants/{tenant_id}/test", responses=_ERRORS)
@_guarded
def post_test(tenant_id: int) -> JSONResponse:
    """Microsoft sign-in and reads, STARFACE admin login, bridge ping; each failure with its fix."""
    runtime = get_runtime()
    with runtime.sessions() as session:
        results = run_connection_test(runtime, session, _find(session, tenant_id), CHECK_TIMEOUT_S)
    ok = all(r.status != "FAILED" for r in results)
    return JSONResponse({"ok": ok, "checks": [vars(r) for r in results]})


@router.post("/tenants/{tenant_id}/sync", responses=_ERRORS)
@_guarded
def post_sync(tenant_id: int) -> JSONResponse:
    """Directory sync now: links users by e-mail; returns the count per link state."""
    runtime = get_runtime()
    with transaction(runtime.sessions) as session:
        tenant = _find(session, tenant_id)
        session.expunge(tenant)
    try:
        counts = sync_directory(runtime, tenant, CELERY_QUEUE)
    except (GraphError, StarfaceError, QueueUnavailable) as exc:  # each carries its fix and no secret
        return error(502, "sync", mask_emails(str(exc)) or "failed",
                     "run POST .../test to see which side fails")
    with transaction(runtime.sessions) as session:
        audit.record(session, ACTOR, _find(session, tenant_id), "directory synced", {"after": counts})
    return JSONResponse({"links": counts})


@router.get("/tenants/{tenant_id}/logs", responses=_ERRORS)
@_guarded
def get_logs(tenant_id: int, limit: int = 500, format: str = "json") -> Any:
    """The tenant's recent log lines, newest first (``format=text`` for a download)."""
    with get_runtime().sessions() as session:
        _find(session, tenant_id)
    limit = min(max(limit, 1), 100_000)
    lines = [mask_emails(line) or "" for line in store_for(get_runtime().settings).lines(tenant_id, limit)]
    if format == "text":
        return PlainTextResponse("\n".join(lines) + "\n")
    return JSONResponse({"tenant_id": tenant_id, "lines": lines})


@router.get("/tenants/{tenant_id}/audit", responses=_ERRORS)
@_guarded
def get_audit(tenant_id: int, q: str = "", page: int = 1, per_page: int = 50) -> JSONResponse:
    """Changes made through the console or this API: who, when, what (secrets only as "replaced")."""
    with get_runtime().sessions() as session:
        _find(session, tenant_id)
        rows, total = audit.change_page(session, tenant_id, text=q, page=max(page, 1),
                                        per_page=min(max(per_page, 1), 500))
    return JSONResponse(jsonable({"tenant_id": tenant_id, "total": total, "page": page, "changes": rows}))


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    """The admin API (read and write routes) as OpenAPI 3."""
    document = get_openapi(title="TeamsConnect Cloud admin API", version="1", routes=request.app.routes,
                           description=__doc__)
    document["paths"] = {path: item for path, item in document["paths"].items() if path.startswith("/api/")}
    return JSONResponse(document)
