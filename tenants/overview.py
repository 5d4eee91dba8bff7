"""What an operator reads about tenants: each one's health in one word with the facts behind it, its
settings without secrets, its user links with the problems to act on, and its audit trail. The admin API
(and a console) show these; nothing here writes.

No answer carries a secret (only whether one is set) or an e-mail address: users are shown by STARFACE
account, login id and display name, and free texts (link reasons, error messages, change causes) have
addresses masked, because reasons such as "duplicate e-mail" quote them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ChangeLog, Tenant, TenantHealth, UserLink
from models.findings import finding_list
from presence.linking import LinkState
from tenants.schema import OPTION_FIELDS

_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+")
#: Link states that need the admin's attention (EXCLUDED is the admin's own choice).
PROBLEM_STATES = (LinkState.UNMATCHED, LinkState.DUPLICATE_EMAIL, LinkState.NO_EMAIL)
MAX_PROBLEM_USERS = 1000


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


def counters(health: TenantHealth | None) -> dict[str, int]:
    return {
        "polls_ok": health.polls_ok if health else 0,
        "polls_failed": health.polls_failed if health else 0,
        "throttle_count": health.throttle_count if health else 0,
        "changes_applied": health.changes_applied if health else 0,
    }


def api_tier(tenant: Tenant) -> str:
    """The tier as the admin API names it: "bridge" or "rest"."""
    return "bridge" if tenant.has_bridge else "rest"


def tenant_list(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Every tenant with its tier and health, in id order (two tables, one query)."""
    rows = session.execute(
        select(Tenant, TenantHealth).outerjoin(TenantHealth, TenantHealth.tenant_id == Tenant.id)
        .order_by(Tenant.id)
    ).all()
    return [{"id": tenant.id, "name": tenant.name, "enabled": tenant.enabled, "tier": api_tier(tenant),
             "health": health_summary(tenant, health, now)} for tenant, health in rows]


def settings_of(tenant: Tenant, public_url: str) -> dict[str, Any]:
    """The tenant's settings as stored, minus secrets (only whether each one is set)."""
    options = {name: getattr(tenant, name) for name in OPTION_FIELDS}
    outputs = {name: options.pop(name) for name in ("set_dnd", "set_chat_text", "set_telephony",
                                                      "set_teams_presence")}
    return {
        "description": tenant.description,
        "log_level": tenant.log_level,
        "outputs": outputs,
        **options,
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


def link_report(session: Session, tenant_id: int) -> dict[str, Any]:
    """Users per link state, and the users whose link needs the admin (at most MAX_PROBLEM_USERS)."""
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


def tenant_detail(session: Session, tenant: Tenant, public_url: str, now: datetime) -> dict[str, Any]:
    """One tenant: settings without secrets, health with its counters, user links."""
    health = tenant.health
    return {
        "id": tenant.id,
        "name": tenant.name,
        "enabled": tenant.enabled,
        "tier": api_tier(tenant),
        "config": settings_of(tenant, public_url),
        "health": {**health_summary(tenant, health, now), **counters(health)},
        "links": link_report(session, tenant.id),
        "findings": _masked(finding_list(session, tenant.id, now)),  # e.g. a rival sync (sync/rivals.py)
    }


def change_list(session: Session, tenant_id: int, limit: int) -> list[dict[str, Any]]:
    """The tenant's audit trail, newest first, with the latency from observation to write."""
    rows = session.execute(
        select(ChangeLog, UserLink.login_id)
        .outerjoin(UserLink, UserLink.id == ChangeLog.user_link_id)
        .where(ChangeLog.tenant_id == tenant_id)
        .order_by(ChangeLog.applied_at.desc(), ChangeLog.id.desc())
        .limit(limit)
    ).all()
    return [
        {"id": change.id, "user_link_id": change.user_link_id, "login_id": login_id,
         "target": change.target, "before": _masked(change.before), "after": _masked(change.after),
         "cause": mask_emails(change.cause), "observed_at": change.observed_at,
         "applied_at": change.applied_at, "latency_ms": change.latency_ms}
        for change, login_id in rows
    ]
