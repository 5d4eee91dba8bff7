"""What we applied (one row per user and target) and the audit trail of every change.

``AppliedState`` is the memory that makes every write happen once: a worker compares what it wants with
the row and changes the row only by compare-and-set on ``version`` (see models/store.py).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import JsonDocument, UTCDateTime


class Target(enum.StrEnum):
    """Which system an applied state lives in."""

    STARFACE = "starface"
    TEAMS = "teams"


_TARGETS = ", ".join(f"'{t.value}'" for t in Target)


class AppliedState(Base):
    """The last state we applied for one user in one target, and the observation it came from."""

    __tablename__ = "applied_state"
    __table_args__ = (
        UniqueConstraint("user_link_id", "target"),
        CheckConstraint(f"target IN ({_TARGETS})", name="target"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_link_id: Mapped[int] = mapped_column(ForeignKey("user_link.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(10))
    #: The applied fields, e.g. {"dnd": true, "chat_text": "On a call in MS Teams", "telephony": "ACTIVE"}.
    fields: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    #: Names of the fields we set ourselves (only those may we clear).
    owned: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    #: Graph sequenceNumber of the observation (Teams -> STARFACE), if it had one.
    observed_seq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: When the observation was made (Graph poll time or STARFACE event time); older ones never win.
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Bumped on every change; writers compare-and-set on it.
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    #: A worker's claim while it writes to the external system (expires, so a dead worker blocks nobody).
    claim_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: What the claiming worker is about to write (recognised as ours if the worker dies after writing).
    claim_fields: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument, nullable=True)


class ChangeLog(Base):
    """One applied change: the audit trail, and the source of latency figures."""

    __tablename__ = "change_log"
    __table_args__ = (
        CheckConstraint(f"target IN ({_TARGETS})", name="target"),
        # Read by the audit view and the latency report: a tenant's changes in time order.
        Index("ix_change_log_tenant_applied", "tenant_id", "applied_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    user_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_link.id", ondelete="SET NULL"), nullable=True, index=True
    )
    target: Mapped[str] = mapped_column(String(10))
    before: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    cause: Mapped[str] = mapped_column(String(255))
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def latency_ms(self) -> float | None:
        """Milliseconds from the observation to the applied write."""
        if self.observed_at is None:
            return None
        return (self.applied_at - self.observed_at).total_seconds() * 1000.0
