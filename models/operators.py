"""Console operators (argon2 hashes, role admin/viewer) and the record of every change an operator or an
API client made to a tenant (who, when, what; never a secret value).

`AdminChange` keeps the tenant's id and name without a foreign key, so the record of a deleted tenant
(and of its deletion) stays readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import JsonDocument, UTCDateTime

ROLES = ("admin", "viewer")


class Operator(Base):
    """A person who signs in to the console."""

    __tablename__ = "operator"
    __table_args__ = (CheckConstraint("role IN ('admin', 'viewer')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default="viewer")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AdminChange(Base):
    """One change made through the console or the admin API."""

    __tablename__ = "admin_change"
    __table_args__ = (Index("ix_admin_change_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tenant_name: Mapped[str] = mapped_column(String(100), default="")
    #: "console:alice" or "api" (the bearer token has no person behind it).
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    #: {"fields": [...], "before": {...}, "after": {...}}: secrets appear only as "replaced".
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
