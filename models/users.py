"""The link between a STARFACE user and a Microsoft Entra user of the same tenant, matched by e-mail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

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
