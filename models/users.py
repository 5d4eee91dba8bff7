"""The link between a STARFACE user and a Microsoft Entra user of the same tenant, matched by e-mail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    any_,
    bindparam,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow
from models.types import UTCDateTime
from presence.linking import LinkState


class UserLink(Base):
    """One STARFACE user of a tenant and the Entra user it is linked to (if any)."""

    __tablename__ = "user_link"
    __table_args__ = (
        UniqueConstraint("tenant_id", "starface_account_id"),
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s.value}'" for s in LinkState) + ")", name="state"
        ),
        # Read by the scheduler tick to split a tenant's linked users into poll batches.
        Index("ix_user_link_tenant_state", "tenant_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    starface_account_id: Mapped[int] = mapped_column(Integer)
    login_id: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    entra_object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(20), default=LinkState.UNMATCHED.value)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"UserLink(id={self.id!r}, tenant_id={self.tenant_id!r}, login_id={self.login_id!r})"


def linked_entra_ids(session: Session, link_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Link id -> (tenant id, Entra object id) of those of these users that are linked, in one statement
    (one array parameter on PostgreSQL, so the statement is the same for every batch size)."""
    if not link_ids:
        return {}
    ids = list(link_ids)
    among = (UserLink.id == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
             if session.get_bind().dialect.name == "postgresql" else UserLink.id.in_(ids))
    rows = session.execute(select(UserLink.id, UserLink.tenant_id, UserLink.entra_object_id).where(
        among, UserLink.state == LinkState.LINKED.value, UserLink.entra_object_id.is_not(None)))
    return {link_id: (tenant_id, entra_id) for link_id, tenant_id, entra_id in rows}
