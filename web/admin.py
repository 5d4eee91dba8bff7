"""The read-only admin API under ``/api``: tenants, their health, user links and the audit trail.

Every route needs ``Authorization: Bearer $TEAMSCONNECT_ADMIN_TOKEN``; without a configured token the API
answers 503 (switched off, never open). Answers carry no secret (only whether one is configured) and no
e-mail address: users are shown by STARFACE account, login id and display name, and free texts (link
reasons, change causes) have addresses masked, because reasons such as "duplicate e-mail" quote them.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ChangeLog, Tenant, TenantHealth, UserLink
from presence.linking import LinkState
from sync.runtime import get_runtime
from web.settings import ADMIN_TOKEN_ENV, WebSettings

_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+")
#: Link states that need the admin's attention (EXCLUDED is the admin's own choice).
PROBLEM_STATES = (LinkState.UNMATCHED, LinkState.DUPLICATE_EMAIL, LinkState.NO_EMAIL)
MAX_PROBLEM_USERS = 1000
DEFAULT_CHANGES = 50
MAX_CHANGES = 500


def require_admin(request: Request) -> None:
    """Checks the bearer token in constant time; 503 if the admin API is switched off."""
    settings: WebSettings = request.app.state.web_settings
    if not settings.admin_enabled:
        raise HTTPException(503, f"admin API disabled: set {ADMIN_TOKEN_ENV}")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode("utf-8")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def mask_emails(text: str | None) -> str | None:
    """``text`` with every e-mail address replaced by ``<e-mail>``."""
    return None if text is None else _EMAIL.sub("<e-mail>", text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_emails(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def health_summary(tenant: Tenant, health: TenantHealth | None, now: datetime) -> dict[str, Any]:
    """One word for the tenant's state plus the facts behind it (newest problem wins)."""
    throttled = bool(health and health.throttled_until and health.throttled_until > now)
    failing = bool(
        health and health.last_error_at
        and (health.last_success_at is None or health.last_error_at > health.last_success_at)
    )
    if not tenant.enabled:
        status = "disabled"
    elif failing:
        status = "error"
    elif throttled:
        status = "throttled"
    elif health is None or health.last_success_at is None:
        status = "never_polled"
    else:
        status = "ok"
    return {
        "status": status,
        "last_success_at": health.last_success_at if health else None,
        "last_error_at": health.last_error_at if health else None,
        "last_error_code": health.last_error_code if health else None,
        "last_error_message": mask_emails(health.last_error_message) if health else None,
        "throttled": throttled,
        "throttled_until": health.throttled_until if throttled and health else None,
        "secret_expiry_warning": health.secret_expiry_warning if health else None,
    }


def _counters(health: TenantHealth | None) -> dict[str, int]:
    return {
        "polls_ok": health.polls_ok if health else 0,
        "polls_failed": health.polls_failed if health else 0,
        "throttle_count": health.throttle_count if health else 0,
        "changes_applied": health.changes_applied if health else 0,
    }


def _tier(tenant: Tenant) -> str:
    return "bridge" if tenant.has_bridge else "rest"


def _tenant_or_404(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise HTTPException(404, f"no tenant with id {tenant_id}")
    return tenant


@router.get("/tenants")
def list_tenants() -> dict[str, Any]:
    now = datetime.now(UTC)
    with get_runtime().sessions() as session:
        rows = session.execute(
            select(Tenant, TenantHealth).outerjoin(TenantHealth, TenantHealth.tenant_id == Tenant.id)
            .order_by(Tenant.id)
        ).all()
        tenants = [
            {"id": tenant.id, "name": tenant.name, "enabled": tenant.enabled, "tier": _tier(tenant),
             "health": health_summary(tenant, health, now)}
            for tenant, health in rows
        ]
    return {"tenants": tenants}


def _config(tenant: Tenant, public_url: str) -> dict[str, Any]:
    """The tenant's settings as stored, minus secrets (only whether each one is set)."""
    return {
        "description": tenant.description,
        "log_level": tenant.log_level,
        "outputs": {"set_dnd": tenant.set_dnd, "set_chat_text": tenant.set_chat_text,
                    "set_telephony": tenant.set_telephony, "set_teams_presence": tenant.set_teams_presence},
        "teams_presence_mode": tenant.teams_presence_mode,
        "ringing_counts_as_call": tenant.ringing_counts_as_call,
        "teams_leads": tenant.teams_leads,
        "manual_dnd_to_teams": tenant.manual_dnd_to_teams,
        "selection": {"mode": tenant.selection_mode, "starface_group_id": tenant.starface_group_id,
                      "login_ids": list(tenant.login_ids or [])},
        "rules": [{"category": rule.category, "dnd_action": rule.dnd_action, "chat_text": rule.chat_text}
                  for rule in tenant.rules],
        "poll_interval_s": tenant.poll_interval_s,
        "microsoft": {"directory_id": tenant.ms_directory_id, "client_id": tenant.ms_client_id,
                      "client_secret_set": bool(tenant.ms_client_secret_encrypted),
                      "client_secret_expires_at": tenant.ms_secret_expires_at,
                      "login_base_url": tenant.login_base_url, "graph_base_url": tenant.graph_base_url},
        "starface": {"base_url": tenant.starface_base_url, "login_id": tenant.starface_login_id,
                     "password_set": bool(tenant.starface_password_encrypted),
                     "bridge_instance": tenant.bridge_instance,
                     "bridge_secret_set": bool(tenant.bridge_secret_encrypted),
                     "webhook_url": f"{public_url.rstrip('/')}/hooks/starface/{tenant.id}"},
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }


def _links(session: Session, tenant_id: int) -> dict[str, Any]:
    counts = {state.value: 0 for state in LinkState}
    for state, count in session.execute(
        select(UserLink.state, func.count()).where(UserLink.tenant_id == tenant_id).group_by(UserLink.state)
    ):
        counts[state] = count
    problem_values = [state.value for state in PROBLEM_STATES]
    problems = session.scalars(
        select(UserLink).where(UserLink.tenant_id == tenant_id, UserLink.state.in_(problem_values))
        .order_by(UserLink.state, UserLink.login_id).limit(MAX_PROBLEM_USERS)
    ).all()
    return {
        "counts": counts,
        "problem_users_total": sum(counts[value] for value in problem_values),
        "problem_users": [
            {"starface_account_id": link.starface_account_id, "login_id": link.login_id,
             "display_name": mask_emails(link.display_name), "state": link.state,
             "reason": mask_emails(link.reason)}
            for link in problems
        ],
    }


@router.get("/tenants/{tenant_id}")
def get_tenant(tenant_id: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    runtime = get_runtime()
    with runtime.sessions() as session:
        tenant = _tenant_or_404(session, tenant_id)
        health = tenant.health
        return {
            "id": tenant.id,
            "name": tenant.name,
            "enabled": tenant.enabled,
            "tier": _tier(tenant),
            "config": _config(tenant, runtime.settings.public_url),
            "health": {**health_summary(tenant, health, now), **_counters(health)},
            "links": _links(session, tenant.id),
        }


@router.get("/tenants/{tenant_id}/changes")
def list_changes(
    tenant_id: int, limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = DEFAULT_CHANGES
) -> dict[str, Any]:
    """The tenant's audit trail, newest first, with the latency from observation to write."""
    with get_runtime().sessions() as session:
        _tenant_or_404(session, tenant_id)
        rows = session.execute(
            select(ChangeLog, UserLink.login_id)
            .outerjoin(UserLink, UserLink.id == ChangeLog.user_link_id)
            .where(ChangeLog.tenant_id == tenant_id)
            .order_by(ChangeLog.applied_at.desc(), ChangeLog.id.desc())
            .limit(limit)
        ).all()
        changes = [
            {"id": change.id, "user_link_id": change.user_link_id, "login_id": login_id,
             "target": change.target, "before": _masked(change.before), "after": _masked(change.after),
             "cause": mask_emails(change.cause), "observed_at": change.observed_at,
             "applied_at": change.applied_at, "latency_ms": change.latency_ms}
            for change, login_id in rows
        ]
    return {"tenant_id": tenant_id, "changes": changes}
