"""Changes made through the console or the admin API, each recorded with who, when and what changed.

The audited operations wrap the tenant service (tenants/service.py) and write the record in the same
transaction as the change, so there is never a change without its record or a record of a change that was
refused. Secret values are never recorded: a changed secret is recorded as "replaced".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import AdminChange, Tenant
from models.crypto import SecretBox
from tenants.changes import KEEP_SECRET, lookup, plain
from tenants.overview import mask_emails
from tenants.schema import SECRET_FIELDS
from tenants.service import create_tenant, delete_tenant, stored_config, update_tenant

SECRET_SHOWN_AS = "replaced"


def _plain_config(tenant: Tenant) -> dict[str, Any]:
    return plain(stored_config(tenant, lambda _ciphertext: KEEP_SECRET))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def record(session: Session, actor: str, tenant: Tenant | None, action: str,
           details: Mapping[str, Any] | None = None, tenant_name: str | None = None) -> AdminChange:
    row = AdminChange(tenant_id=tenant.id if tenant is not None else None,
                      tenant_name=tenant_name or (tenant.name if tenant is not None else ""),
                      actor=actor[:100], action=action, details=_jsonable(dict(details or {})))
    session.add(row)
    session.flush()
    return row


def _diff(before: dict[str, Any], after: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    shown_before, shown_after = {}, {}
    for field in fields:
        if field in SECRET_FIELDS:
            shown_after[field] = SECRET_SHOWN_AS
            continue
        shown_before[field], shown_after[field] = lookup(before, field), lookup(after, field)
    return {"fields": fields, "before": shown_before, "after": shown_after}


def create(session: Session, box: SecretBox, definition: Mapping[str, Any], actor: str) -> Tenant:
    tenant = create_tenant(session, box, definition)
    config = _plain_config(tenant)
    secrets = [path for path in SECRET_FIELDS if lookup(definition, path)]
    record(session, actor, tenant, "tenant created",
           {"fields": sorted(["name", "microsoft.directory_id", "microsoft.client_id", "starface.base_url",
                              "starface.login_id", *secrets]),
            "after": {"name": config["name"], "enabled": config["enabled"],
                      "microsoft.directory_id": config["microsoft"]["directory_id"],
                      "starface.base_url": config["starface"]["base_url"],
                      **{path: SECRET_SHOWN_AS for path in secrets}}})
    return tenant


def update(session: Session, box: SecretBox, tenant: Tenant, changes: Mapping[str, Any], actor: str,
           action: str = "settings changed") -> list[str]:
    """The service's `update_tenant` (validated as a whole, nothing half saved) plus its record; no record
    when nothing changed."""
    before = _plain_config(tenant)
    changed = update_tenant(session, box, tenant, changes)
    if changed:
        record(session, actor, tenant, action, _diff(before, _plain_config(tenant), changed))
    return changed


def delete(session: Session, tenant: Tenant, actor: str, force: bool = False) -> None:
    name, tenant_id = tenant.name, tenant.id
    delete_tenant(session, tenant, force=force)
    session.add(AdminChange(tenant_id=tenant_id, tenant_name=name, actor=actor, action="tenant deleted",
                            details={"force": force}))
    session.flush()


def change_page(session: Session, tenant_id: int | None, *, text: str = "", page: int = 1,
                per_page: int = 25) -> tuple[list[dict[str, Any]], int]:
    """One page of recorded changes (newest first) and the total; ``text`` filters on actor, action and
    changed fields."""
    query = select(AdminChange)
    if tenant_id is not None:
        query = query.where(AdminChange.tenant_id == tenant_id)
    rows = list(session.scalars(query.order_by(AdminChange.at.desc(), AdminChange.id.desc())))
    needle = text.strip().lower()
    if needle:
        rows = [row for row in rows if needle in f"{row.actor} {row.action} {row.details}".lower()]
    total = len(rows)
    start = max(page - 1, 0) * per_page
    return [change_dict(row) for row in rows[start:start + per_page]], total


def change_dict(row: AdminChange) -> dict[str, Any]:
    return {"id": row.id, "tenant_id": row.tenant_id, "tenant_name": row.tenant_name, "actor": row.actor,
            "action": row.action, "at": row.at, "fields": list(row.details.get("fields", [])),
            "before": row.details.get("before", {}), "after": row.details.get("after", {}),
            "summary": mask_emails(_summary(row))}


def _summary(row: AdminChange) -> str:
    after, before = row.details.get("after", {}), row.details.get("before", {})
    parts = []
    for field in row.details.get("fields", []):
        if field in before:
            parts.append(f"{field}: {before.get(field)!r} -> {after.get(field)!r}")
        else:
            parts.append(f"{field}: {after.get(field, 'set')}")
    return "; ".join(parts)


def last_change_at(session: Session) -> dict[int, Any]:
    """Per tenant id, when the console or API last changed it (one query)."""
    rows = session.execute(select(AdminChange.tenant_id, func.max(AdminChange.at))
                           .where(AdminChange.tenant_id.is_not(None)).group_by(AdminChange.tenant_id))
    return {tenant_id: at for tenant_id, at in rows}
