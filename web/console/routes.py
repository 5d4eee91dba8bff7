"""The admin console's pages under /console: tenants list, new-tenant wizard, tenant page with its sections,
changes, log and health. Every change goes through tenants/audit.py (the tenant service plus the record of
who changed what); every POST checks the CSRF token first and then the operator's role.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from connectors.graph import GraphError
from connectors.starface import StarfaceError
from models import ChangeLog, Tenant, TenantHealth, UserLink
from models.crypto import SecretBoxError
from models.db import transaction
from models.tenant import DEFAULT_BRIDGE_INSTANCE, DEFAULT_GRAPH_BASE_URL, DEFAULT_LOGIN_BASE_URL
from presence.categories import Category
from presence.linking import SelectionMode
from presence.policy import DndAction, TeamsPresenceMode
from sync.connection_test import check_new_starface, run_connection_test
from sync.directory import sync_directory
from sync.dry_run import dry_run
from sync.ports import QueueUnavailable
from sync.runtime import get_runtime
from tenants import audit
from tenants.diagnostics import CheckResult
from tenants.live_checks import check_microsoft
from tenants.operators import authenticate
from tenants.overview import change_list, mask_emails, tenant_detail
from tenants.schema import TenantConfigError
from tenants.summary import secret_expiry_warning
from web.console import auth, forms
from web.console.i18n import LANGUAGES, language, translator
from workers.task_queue import CELERY_QUEUE
from workers.tenant_log import store_for

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/console", include_in_schema=False)
WIZARD_COOKIE = "tc_wizard"
CHECK_TIMEOUT_S = 10.0
LOG_PAGE_LINES = 500
WIZARD_STEPS = ("name", "microsoft", "starface", "users", "rules", "dryrun", "enable")
DEFAULT_FLOWER_URL = "http://127.0.0.1:5555"


# --- plumbing ----------------------------------------------------------------------------------------------


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    session = auth.read_session(request)
    lang = language(request)
    response = templates.TemplateResponse(request, name, {
        **context, "csrf": session.csrf, "operator": session.operator, "lang": lang, "t": translator(lang),
        "is_admin": session.role == "admin", "categories": [c.value for c in Category],
        "dnd_actions": [a.value for a in DndAction],
    }, status_code=status)
    auth.write_session(request, response, session)
    return response


def redirect(request: Request, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    auth.write_session(request, response, auth.read_session(request))
    return response


def _signed_in(request: Request) -> auth.ConsoleSession | None:
    session = auth.read_session(request)
    return session if session.operator is not None else None


def _login_redirect(request: Request) -> RedirectResponse:
    return redirect(request, f"/console/login?next={quote(request.url.path)}")


async def _admin_form(request: Request) -> tuple[dict[str, Any], auth.ConsoleSession]:
    """The POSTed form of an admin: CSRF first (403), then sign-in (401) and role (403)."""
    form = dict(await request.form())
    session = auth.check_csrf(request, form.get("csrf") if isinstance(form.get("csrf"), str) else None)
    if session.operator is None:
        raise HTTPException(401, "sign in first")
    if session.operator.role != "admin":
        raise HTTPException(403, "viewers cannot change anything; ask an admin")
    return form, session


def _safe_next(value: Any, default: str) -> str:
    ok = isinstance(value, str) and value.startswith("/console/") and "//" not in value
    return value if ok else default


def _tenant(db: Session, tenant_id: int) -> Tenant:
    tenant = db.get(Tenant, tenant_id)
    if tenant is None:
        raise HTTPException(404, f"no tenant with id {tenant_id}")
    return tenant


def _now() -> datetime:
    return datetime.now(UTC)


# --- sign-in -----------------------------------------------------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or not path.is_file():
        raise HTTPException(404, "no such file")
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


@router.get("/lang/{lang}")
def set_language(request: Request, lang: str, next: str = "/console/") -> RedirectResponse:
    response = redirect(request, _safe_next(next, "/console/"))
    if lang in LANGUAGES:
        response.set_cookie("tc_lang", lang, max_age=365 * 86400, samesite="lax", path="/console")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/console/") -> HTMLResponse:
    return render(request, "login.html", {"next": _safe_next(next, "/console/"), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = dict(await request.form())
    auth.check_csrf(request, form.get("csrf") if isinstance(form.get("csrf"), str) else None)
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(form.get("next"), "/console/")
    keys = auth.limit_keys(request, username)
    if any(auth.LIMITER.failures(key) >= limit for key, limit in keys):
        return render(request, "login.html", {"next": target, "error": (
            "Too many failed sign-ins: wait 10 minutes, then try again (or ask an admin to set a new "
            "password with `teamsconnect operator passwd`).")}, status=429)
    with transaction(get_runtime().sessions) as db:
        operator = authenticate(db, username, password) if username and password else None
        if operator is not None:
            db.expunge(operator)
    if operator is None:
        for key, _limit in keys:
            auth.LIMITER.fail(key)
        return render(request, "login.html", {"next": target, "error": (
            "Wrong user name or password: check both and try again.")}, status=401)
    auth.LIMITER.clear(keys[0][0])
    request.state.console_session = auth.start_session(operator)
    return redirect(request, target)


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    form = dict(await request.form())
    auth.check_csrf(request, form.get("csrf") if isinstance(form.get("csrf"), str) else None)
    request.state.console_session = auth.ConsoleSession(csrf=auth._new_csrf())
    return redirect(request, "/console/login")


# --- tenants list ------------------------------------------------------------------------------------------


def tenant_rows(db: Session, query: str = "") -> list[dict[str, Any]]:
    now = _now()
    rows = db.execute(select(Tenant, TenantHealth)
                      .outerjoin(TenantHealth, TenantHealth.tenant_id == Tenant.id)
                      .order_by(Tenant.name)).all()
    counts: dict[int, dict[str, int]] = {}
    for tenant_id, state, count in db.execute(select(UserLink.tenant_id, UserLink.state, func.count())
                                              .group_by(UserLink.tenant_id, UserLink.state)):
        counts.setdefault(tenant_id, {})[state] = count
    applied = dict(db.execute(select(ChangeLog.tenant_id, func.max(ChangeLog.applied_at))
                              .group_by(ChangeLog.tenant_id)).all())
    configured = audit.last_change_at(db)
    needle = query.strip().lower()
    result = []
    from tenants.overview import health_summary

    for tenant, health in rows:
        if needle and needle not in f"{tenant.name} {tenant.description} {tenant.ms_directory_id}".lower():
            continue
        summary = health_summary(tenant, health, now)
        last = [at for at in (applied.get(tenant.id), configured.get(tenant.id)) if at is not None]
        result.append({
            "id": tenant.id, "name": tenant.name, "description": tenant.description,
            "enabled": tenant.enabled,
            "tier": "REST + bridge" if tenant.has_bridge else "REST only", "health": summary,
            "links": counts.get(tenant.id, {}), "last_change": max(last) if last else None,
            "expiry": (secret_expiry_warning(tenant.ms_secret_expires_at, now)
                       or summary["secret_expiry_warning"]),
        })
    return result


@router.get("/", response_class=HTMLResponse)
def tenants_page(request: Request, q: str = "") -> Response:
    if _signed_in(request) is None:
        return _login_redirect(request)
    with get_runtime().sessions() as db:
        rows = tenant_rows(db, q)
    return render(request, "tenants.html", {"tenants": rows, "q": q})


# --- tenant page -------------------------------------------------------------------------------------------


def tenant_context(db: Session, tenant: Tenant) -> dict[str, Any]:
    runtime = get_runtime()
    detail = tenant_detail(db, tenant, runtime.settings.public_url, _now())
    links = db.scalars(select(UserLink).where(UserLink.tenant_id == tenant.id)
                       .order_by(UserLink.state, UserLink.login_id).limit(1000)).all()
    recent, _total = audit.change_page(db, tenant.id, per_page=10)
    rules = {row.category: row for row in tenant.rules}
    return {
        "tenant": tenant, "detail": detail, "config": detail["config"], "health": detail["health"],
        "rules": {c.value: {"dnd": rules[c.value].dnd_action if c.value in rules else "leave",
                            "chat_text": rules[c.value].chat_text if c.value in rules else None}
                  for c in Category},
        "links": [{"login_id": link.login_id, "display_name": mask_emails(link.display_name),
                   "state": link.state, "reason": mask_emails(link.reason)} for link in links],
        "recent": recent, "modes": [m.value for m in SelectionMode],
        "presence_modes": [m.value for m in TeamsPresenceMode],
        "options": forms.BOOLEAN_OPTIONS,
        "expiry": secret_expiry_warning(tenant.ms_secret_expires_at, _now()),
    }


def show_tenant(request: Request, tenant_id: int, *, status: int = 200, step: str | None = None,
                **extra: Any) -> Response:
    with get_runtime().sessions() as db:
        tenant = _tenant(db, tenant_id)
        context = tenant_context(db, tenant)
    context.update(extra)
    context.setdefault("errors", [])
    if step is not None:
        context["step"], context["steps"] = step, WIZARD_STEPS
        return render(request, "wizard_setup.html", context, status)
    return render(request, "tenant.html", context, status)


@router.get("/tenants/{tenant_id}", response_class=HTMLResponse)
def tenant_page(request: Request, tenant_id: int, saved: str = "") -> Response:
    if _signed_in(request) is None:
        return _login_redirect(request)
    return show_tenant(request, tenant_id, saved=saved)


def _step_of(next_url: str) -> str | None:
    marker = "/setup/"
    return next_url.split(marker, 1)[1].split("?")[0] if marker in next_url else None


def _change(request: Request, tenant_id: int, form: dict[str, Any], session: auth.ConsoleSession,
            changes: dict[str, Any], section: str, action: str) -> Response:
    """Applies one section's changes through the audited tenant service; a refused change re-renders the
    page with each problem next to its field and nothing saved."""
    runtime = get_runtime()
    target = _safe_next(form.get("next"), f"/console/tenants/{tenant_id}")
    try:
        with transaction(runtime.sessions) as db:
            tenant = _tenant(db, tenant_id)
            audit.update(db, runtime.box, tenant, changes, auth.actor(session), action)
    except TenantConfigError as exc:
        return show_tenant(request, tenant_id, status=400, step=_step_of(target),
                           errors=forms.problems(exc), section=section)
    sep = "&" if "?" in target else "?"
    return redirect(request, f"{target}{sep}saved={quote(section)}#{section}")


@router.post("/tenants/{tenant_id}/general")
async def save_general(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    return _change(request, tenant_id, form, session, forms.general_changes(form), "general",
                   "settings changed")


@router.post("/tenants/{tenant_id}/selection")
async def save_selection(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    return _change(request, tenant_id, form, session, forms.selection_changes(form), "selection",
                   "user selection changed")


@router.post("/tenants/{tenant_id}/rules")
async def save_rules(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    return _change(request, tenant_id, form, session, forms.rule_changes(form), "rules",
                   "status table changed")


@router.post("/tenants/{tenant_id}/rules/reset")
async def reset_rules(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    from presence.policy import overlay_rules

    defaults = {c.value: {"dnd": r.dnd.value, "chat_text": r.chat_text} for c, r in overlay_rules({}).items()}
    return _change(request, tenant_id, form, session, {"rules": defaults}, "rules", "status table reset")


@router.post("/tenants/{tenant_id}/auth")
async def save_auth(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    with get_runtime().sessions() as db:
        has_bridge = _tenant(db, tenant_id).has_bridge
    return _change(request, tenant_id, form, session, forms.auth_changes(form, has_bridge), "auth",
                   "credentials changed")


@router.post("/tenants/{tenant_id}/enable")
async def enable(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    return _change(request, tenant_id, form, session, {"enabled": True}, "general", "tenant enabled")


@router.post("/tenants/{tenant_id}/disable")
async def disable(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    return _change(request, tenant_id, form, session, {"enabled": False}, "general", "tenant disabled")


@router.post("/tenants/{tenant_id}/sync")
async def sync_now(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    runtime = get_runtime()
    target = _safe_next(form.get("next"), f"/console/tenants/{tenant_id}")
    with transaction(runtime.sessions) as db:
        tenant = _tenant(db, tenant_id)
        db.expunge(tenant)
    try:  # Graph and the PBX answer slowly: off the event loop that also serves the bridge's webhooks
        counts = await run_in_threadpool(sync_directory, runtime, tenant, CELERY_QUEUE)
    except (GraphError, StarfaceError, QueueUnavailable) as exc:  # each carries its fix, never a secret
        return show_tenant(request, tenant_id, status=502, step=_step_of(target), section="selection",
                           errors=[{"field": "directory sync", "message": mask_emails(str(exc)),
                                    "fix": "run Test connection to see which side fails"}])
    with transaction(runtime.sessions) as db:
        audit.record(db, auth.actor(session), _tenant(db, tenant_id), "directory synced", {"after": counts})
    sep = "&" if "?" in target else "?"
    return redirect(request, f"{target}{sep}saved=selection#selection")


@router.post("/tenants/{tenant_id}/test", response_class=HTMLResponse)
async def test_connection(request: Request, tenant_id: int) -> Response:
    form, _session = await _admin_form(request)
    runtime = get_runtime()

    def checks() -> list[CheckResult]:
        with runtime.sessions() as db:
            return run_connection_test(runtime, db, _tenant(db, tenant_id), CHECK_TIMEOUT_S)

    results = await run_in_threadpool(checks)
    target = _safe_next(form.get("next"), "")
    return show_tenant(request, tenant_id, step=_step_of(target), checks=results, section="test")


@router.post("/tenants/{tenant_id}/dry-run", response_class=HTMLResponse)
async def dry_run_page(request: Request, tenant_id: int) -> Response:
    form, _session = await _admin_form(request)
    runtime = get_runtime()

    def plan() -> tuple[Any, str | None]:
        with runtime.sessions() as db:
            return dry_run(runtime, db, _tenant(db, tenant_id))

    planned, error = await run_in_threadpool(plan)
    target = _safe_next(form.get("next"), "")
    return show_tenant(request, tenant_id, step=_step_of(target), planned=planned, dry_run_error=error,
                       section="dryrun")


@router.post("/tenants/{tenant_id}/delete")
async def delete(request: Request, tenant_id: int) -> Response:
    form, session = await _admin_form(request)
    from tenants.service import TenantInUse

    try:
        with transaction(get_runtime().sessions) as db:
            tenant = _tenant(db, tenant_id)
            if str(form.get("confirm_name") or "").strip() != tenant.name:
                raise TenantConfigError([("confirm_name", "type the tenant's name to confirm the deletion")])
            audit.delete(db, tenant, auth.actor(session))
    except (TenantConfigError, TenantInUse) as exc:
        problems = forms.problems(exc) if isinstance(exc, TenantConfigError) else [
            forms.split_problem("enabled", str(exc))]
        return show_tenant(request, tenant_id, status=400, errors=problems, section="general")
    return redirect(request, "/console/")


# --- changes, log, health -----------------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/changes", response_class=HTMLResponse)
def changes_page(request: Request, tenant_id: int, q: str = "", page: int = 1) -> Response:
    if _signed_in(request) is None:
        return _login_redirect(request)
    page = max(page, 1)
    with get_runtime().sessions() as db:
        tenant = _tenant(db, tenant_id)
        rows, total = audit.change_page(db, tenant_id, text=q, page=page, per_page=25)
        applied = change_list(db, tenant_id, 50)
    return render(request, "changes.html", {"tenant": tenant, "rows": rows, "total": total, "page": page,
                                            "pages": max((total + 24) // 25, 1), "q": q, "applied": applied})


def _log_lines(tenant_id: int, limit: int) -> list[str]:
    return [mask_emails(line) or "" for line in store_for(get_runtime().settings).lines(tenant_id, limit)]


@router.get("/tenants/{tenant_id}/log", response_class=HTMLResponse)
def log_page(request: Request, tenant_id: int, q: str = "") -> Response:
    if _signed_in(request) is None:
        return _login_redirect(request)
    with get_runtime().sessions() as db:
        tenant = _tenant(db, tenant_id)
    lines = [line for line in _log_lines(tenant_id, LOG_PAGE_LINES) if q.lower() in line.lower()]
    return render(request, "log.html", {"tenant": tenant, "lines": lines, "q": q})


@router.get("/tenants/{tenant_id}/log.txt")
def log_download(request: Request, tenant_id: int) -> Response:
    if _signed_in(request) is None:
        raise HTTPException(401, "sign in first")
    with get_runtime().sessions() as db:
        tenant = _tenant(db, tenant_id)
    body = "\n".join(_log_lines(tenant_id, 100_000)) + "\n"
    return PlainTextResponse(body, headers={
        "Content-Disposition": f'attachment; filename="teamsconnect-{tenant.name}-log.txt"'})


@router.get("/tenants/{tenant_id}/health", response_class=HTMLResponse)
def health_page(request: Request, tenant_id: int) -> Response:
    if _signed_in(request) is None:
        return _login_redirect(request)
    runtime = get_runtime()
    with runtime.sessions() as db:
        tenant = _tenant(db, tenant_id)
        detail = tenant_detail(db, tenant, runtime.settings.public_url, _now())
        blocked = runtime.coordination.blocked_for(tenant_id)
    errors = [line for line in _log_lines(tenant_id, LOG_PAGE_LINES)
              if " ERROR " in line or " WARNING " in line]
    return render(request, "health.html", {
        "tenant": tenant, "health": detail["health"], "blocked_s": blocked, "errors": errors[:20],
        "flower_url": os.environ.get("TEAMSCONNECT_FLOWER_URL", DEFAULT_FLOWER_URL),
        "expiry": secret_expiry_warning(tenant.ms_secret_expires_at, _now())})


# --- new tenant wizard -------------------------------------------------------------------------------------


def _draft(request: Request) -> dict[str, Any]:
    raw = request.cookies.get(WIZARD_COOKIE)
    if not raw:
        return {}
    try:
        return json.loads(get_runtime().box.decrypt(raw))
    except (SecretBoxError, ValueError):
        return {}


def _keep_draft(response: Response, draft: dict[str, Any]) -> None:
    """The wizard's not yet stored input, secrets included, encrypted with the service's keys."""
    response.set_cookie(WIZARD_COOKIE, get_runtime().box.encrypt(json.dumps(draft)), max_age=3600,
                        httponly=True, samesite="lax", path="/console/new",
                        secure=get_runtime().settings.public_url.startswith("https://"))


def _wizard(request: Request, step: str, status: int = 200, **extra: Any) -> HTMLResponse:
    draft = _draft(request)
    hidden = ("client_secret", "starface_password", "bridge_secret")
    shown = {k: v for k, v in draft.items() if k not in hidden}
    return render(request, "wizard.html", {"step": step, "steps": WIZARD_STEPS, "draft": shown,
                                           "has_secret": "client_secret" in draft, "errors": [],
                                           "defaults": {"login": DEFAULT_LOGIN_BASE_URL,
                                                        "graph": DEFAULT_GRAPH_BASE_URL,
                                                        "bridge": DEFAULT_BRIDGE_INSTANCE}, **extra}, status)


@router.get("/new", response_class=HTMLResponse)
def wizard_start(request: Request, step: str = "name") -> Response:
    session = _signed_in(request)
    if session is None:
        return _login_redirect(request)
    if session.role != "admin":
        raise HTTPException(403, "viewers cannot create tenants; ask an admin")
    return _wizard(request, step if step in ("name", "microsoft", "starface") else "name")


def _problem(field: str, message: str) -> dict[str, str]:
    return forms.split_problem(field, message)


@router.post("/new/name", response_class=HTMLResponse)
async def wizard_name(request: Request) -> Response:
    form, _session = await _admin_form(request)
    name = str(form.get("name") or "").strip()
    from tenants.schema import validate_config
    from tenants.service import find_tenant

    problems: list[dict[str, str]] = []
    try:
        validate_config({"name": name})  # only the name's own problems count at this step
    except TenantConfigError as exc:
        problems = [p for p in forms.problems(exc) if p["field"] == "name"]
    if not problems:
        with get_runtime().sessions() as db:
            if find_tenant(db, name) is not None:
                problems = [_problem("name", f"a tenant named {name!r} exists already; choose another name")]
    if problems:
        return _wizard(request, "name", 400, errors=problems, typed={"name": name})
    draft = {**_draft(request), "name": name, "description": str(form.get("description") or "").strip()}
    response = redirect(request, "/console/new?step=microsoft")
    _keep_draft(response, draft)
    return response


def _validate_microsoft(values: dict[str, Any]) -> None:
    from tenants.schema import MicrosoftConfig, validate

    validate(MicrosoftConfig, values, "microsoft")


@router.post("/new/microsoft", response_class=HTMLResponse)
async def wizard_microsoft(request: Request) -> Response:
    form, _session = await _admin_form(request)
    draft = _draft(request)
    secret = str(form.get("client_secret") or "") or draft.get("client_secret", "")
    values = {"directory_id": str(form.get("directory_id") or "").strip(),
              "client_id": str(form.get("client_id") or "").strip(), "client_secret": secret,
              "login_base_url": str(form.get("login_base_url") or DEFAULT_LOGIN_BASE_URL).strip(),
              "graph_base_url": str(form.get("graph_base_url") or DEFAULT_GRAPH_BASE_URL).strip()}
    typed = {k: v for k, v in values.items() if k != "client_secret"}
    try:
        _validate_microsoft(values)
    except TenantConfigError as exc:
        return _wizard(request, "microsoft", 400, errors=forms.problems(exc), typed=typed)
    runtime = get_runtime()
    check = await run_in_threadpool(check_microsoft, values["directory_id"], values["client_id"], secret,
                                    values["login_base_url"], values["graph_base_url"], runtime.verify,
                                    CHECK_TIMEOUT_S)
    if check.status != "OK":
        return _wizard(request, "microsoft", 400, check=check, typed=typed)
    response = redirect(request, "/console/new?step=starface")
    _keep_draft(response, {**draft, **values})
    return response


@router.post("/new/starface", response_class=HTMLResponse)
async def wizard_starface(request: Request) -> Response:
    form, session = await _admin_form(request)
    draft = _draft(request)
    if "client_secret" not in draft or "name" not in draft:
        return redirect(request, "/console/new?step=name")
    password = str(form.get("starface_password") or "")
    bridge_secret = str(form.get("bridge_secret") or "")
    typed = {"starface_base_url": str(form.get("starface_base_url") or "").strip(),
             "starface_login_id": str(form.get("starface_login_id") or "").strip(),
             "bridge_instance": str(form.get("bridge_instance") or DEFAULT_BRIDGE_INSTANCE).strip(),
             "bridge_enabled": form.get("bridge_enabled") == "on"}
    definition = {
        "name": draft["name"], "description": draft.get("description", ""), "enabled": False,
        "microsoft": {k: draft[k] for k in ("directory_id", "client_id", "client_secret", "login_base_url",
                                            "graph_base_url")},
        "starface": {"base_url": typed["starface_base_url"], "login_id": typed["starface_login_id"],
                     "password": password,
                     "bridge": ({"instance": typed["bridge_instance"], "secret": bridge_secret}
                                if typed["bridge_enabled"] else None)},
    }
    from tenants.schema import validate_config

    try:
        config = validate_config(definition)
    except TenantConfigError as exc:
        return _wizard(request, "starface", 400, errors=forms.problems(exc), typed=typed)
    runtime = get_runtime()
    check = await run_in_threadpool(check_new_starface, runtime, config.starface.base_url,
                                    typed["starface_login_id"], password, CHECK_TIMEOUT_S)
    if check.status != "OK":
        return _wizard(request, "starface", 400, check=check, typed=typed)
    try:
        with transaction(runtime.sessions) as db:
            tenant_id = audit.create(db, runtime.box, definition, auth.actor(session)).id
    except TenantConfigError as exc:
        return _wizard(request, "starface", 400, errors=forms.problems(exc), typed=typed)
    response = redirect(request, f"/console/tenants/{tenant_id}/setup/users")
    response.delete_cookie(WIZARD_COOKIE, path="/console/new")
    return response


@router.get("/tenants/{tenant_id}/setup/{step}", response_class=HTMLResponse)
def wizard_setup(request: Request, tenant_id: int, step: str, saved: str = "") -> Response:
    if _signed_in(request) is None:
        return _login_redirect(request)
    if step not in WIZARD_STEPS[3:]:
        raise HTTPException(404, f"no wizard step {step!r}")
    return show_tenant(request, tenant_id, step=step, saved=saved)
