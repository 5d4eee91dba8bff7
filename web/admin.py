"""The read-only admin API under ``/api``: tenants, their health, user links and the audit trail
(tenants/overview.py reads them; no answer carries a secret or an e-mail address).

Every route needs ``Authorization: Bearer $TEAMSCONNECT_ADMIN_TOKEN``; without a configured token the API
answers 503 (switched off, never open).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from models import Tenant
from sync.runtime import get_runtime
from tenants.overview import change_list, tenant_detail, tenant_list
from web.auth import bearer_matches
from web.settings import ADMIN_TOKEN_ENV, WebSettings

DEFAULT_CHANGES = 50
#: Tenant ids are 32-bit (the tenant.id column); a larger id names no tenant (PostgreSQL would refuse it).
MAX_TENANT_ID = 2**31 - 1
MAX_CHANGES = 500


def require_admin(request: Request) -> None:
    """Checks the bearer token in constant time; 503 if the admin API is switched off."""
    settings: WebSettings = request.app.state.web_settings
    if not settings.admin_enabled:
        raise HTTPException(503, f"admin API disabled: set {ADMIN_TOKEN_ENV}")
    if not bearer_matches(request, settings.admin_token.get_secret_value()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def _tenant_or_404(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id) if 1 <= tenant_id <= MAX_TENANT_ID else None
    if tenant is None:
        raise HTTPException(404, f"no tenant with id {tenant_id}")
    return tenant


@router.get("/tenants")
def list_tenants() -> dict[str, Any]:
    with get_runtime().sessions() as session:
        return {"tenants": tenant_list(session, datetime.now(UTC))}


@router.get("/tenants/{tenant_id}")
def get_tenant(tenant_id: int) -> dict[str, Any]:
    runtime = get_runtime()
    with runtime.sessions() as session:
        tenant = _tenant_or_404(session, tenant_id)
        return tenant_detail(session, tenant, runtime.settings.public_url, datetime.now(UTC))


@router.get("/tenants/{tenant_id}/changes")
def list_changes(
    tenant_id: int, limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = DEFAULT_CHANGES
) -> dict[str, Any]:
    """The tenant's audit trail, newest first, with the latency from observation to write."""
    with get_runtime().sessions() as session:
        _tenant_or_404(session, tenant_id)
        return {"tenant_id": tenant_id, "changes": change_list(session, tenant_id, limit)}
