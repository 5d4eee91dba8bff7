"""Tenant health updates, each a single UPDATE so that concurrent workers never lose a count."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from models import TenantHealth
from models.base import utcnow

#: ``record_success``'s UPDATE, built once and run on the session's connection: every poll runs it, and
#: building it and passing it through the ORM cost more CPU than PostgreSQL's work.
_POLLS_OK = (
    update(TenantHealth.__table__)
    .where(TenantHealth.__table__.c.tenant_id.in_(bindparam("tenant_ids", expanding=True)))
    .values(last_success_at=bindparam("now"), polls_ok=TenantHealth.__table__.c.polls_ok + 1,
            last_error_code=None, last_error_message=None)
)


def record_success(session: Session, tenant_ids: list[int], now: datetime | None = None) -> None:
    """Polls worked (one tenant's, or a packed task's tenants'): stamp the time, count them, and clear the
    error shown to the admin, in one UPDATE."""
    if not tenant_ids:
        return
    session.connection().execute(_POLLS_OK, {"tenant_ids": list(tenant_ids), "now": now or utcnow()})


def record_error(session: Session, tenant_id: int, code: str, message: str, *, poll: bool = True) -> None:
    """Something failed for this tenant; ``message`` is the human text with the fix (never a secret)."""
    values: dict[str, object] = {"last_error_at": utcnow(), "last_error_code": code[:100],
                                 "last_error_message": message}
    if poll:
        values["polls_failed"] = TenantHealth.polls_failed + 1
    session.execute(
        update(TenantHealth).where(TenantHealth.tenant_id == tenant_id).values(**values)
        .execution_options(synchronize_session=False)
    )


def record_throttled(session: Session, tenant_id: int, until: datetime) -> None:
    session.execute(
        update(TenantHealth)
        .where(TenantHealth.tenant_id == tenant_id)
        .values(throttled_until=until, throttle_count=TenantHealth.throttle_count + 1)
        .execution_options(synchronize_session=False)
    )


def record_changes(session: Session, tenant_id: int, count: int = 1) -> None:
    session.execute(
        update(TenantHealth)
        .where(TenantHealth.tenant_id == tenant_id)
        .values(changes_applied=TenantHealth.changes_applied + count)
        .execution_options(synchronize_session=False)
    )
