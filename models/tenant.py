"""A tenant (one Microsoft 365 tenant + one STARFACE PBX), its status rule table and its health.

Secrets live only in ``*_encrypted`` columns (see models/crypto.py); nothing here decrypts them implicitly.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.types import JsonDocument, UTCDateTime
from presence.linking import SelectionMode
from presence.policy import DndAction, TeamsPresenceMode

DEFAULT_LOGIN_BASE_URL = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com"
DEFAULT_BRIDGE_INSTANCE = "TeamsConnectBridge"
DEFAULT_POLL_INTERVAL_S = 1.0  # a floor: the scheduler stretches it to the tenant's Graph budget


def _values(enum_type: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_type)


class Tenant(Base):
    """One customer: credentials, options and user selection. Polled when ``next_poll_at`` is due."""

    __tablename__ = "tenant"
    __table_args__ = (
        CheckConstraint(f"teams_presence_mode IN ({_values(TeamsPresenceMode)})", name="teams_presence_mode"),
        CheckConstraint(f"selection_mode IN ({_values(SelectionMode)})", name="selection_mode"),
        CheckConstraint("poll_interval_s > 0", name="poll_interval_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    log_level: Mapped[str] = mapped_column(String(10), default="INFO")

    # Outputs, each switchable per tenant.
    set_dnd: Mapped[bool] = mapped_column(Boolean, default=True)
    set_chat_text: Mapped[bool] = mapped_column(Boolean, default=True)
    set_telephony: Mapped[bool] = mapped_column(Boolean, default=False)
    set_teams_presence: Mapped[bool] = mapped_column(Boolean, default=True)
    teams_presence_mode: Mapped[str] = mapped_column(
        String(20), default=TeamsPresenceMode.BUSY_IN_A_CALL.value
    )
    ringing_counts_as_call: Mapped[bool] = mapped_column(Boolean, default=False)
    teams_leads: Mapped[bool] = mapped_column(Boolean, default=False)
    manual_dnd_to_teams: Mapped[bool] = mapped_column(Boolean, default=False)

    # User selection.
    selection_mode: Mapped[str] = mapped_column(String(20), default=SelectionMode.ALL_EXCEPT_LISTED.value)
    starface_group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    login_ids: Mapped[list[str]] = mapped_column(JsonDocument, default=list)

    poll_interval_s: Mapped[float] = mapped_column(Float, default=DEFAULT_POLL_INTERVAL_S)
    # Read by the scheduler tick (scheduler/claims.py): due tenants are claimed with a conditional update.
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    # Microsoft (Entra app with application permissions).
    ms_directory_id: Mapped[str] = mapped_column(String(100))
    ms_client_id: Mapped[str] = mapped_column(String(100))
    ms_client_secret_encrypted: Mapped[str] = mapped_column(Text)
    ms_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    login_base_url: Mapped[str] = mapped_column(String(255), default=DEFAULT_LOGIN_BASE_URL)
    graph_base_url: Mapped[str] = mapped_column(String(255), default=DEFAULT_GRAPH_BASE_URL)

    # STARFACE (REST service account with admin rights; optional bridge module instance).
    starface_base_url: Mapped[str] = mapped_column(String(255))
    starface_login_id: Mapped[str] = mapped_column(String(100))
    starface_password_encrypted: Mapped[str] = mapped_column(Text)
    bridge_instance: Mapped[str | None] = mapped_column(String(100), nullable=True)
    bridge_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    rules: Mapped[list[StatusRule]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="StatusRule.id"
    )
    health: Mapped[TenantHealth | None] = relationship(back_populates="tenant", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, name={self.name!r})"

    @property
    def has_bridge(self) -> bool:
        """True when the tenant runs tier 2 (REST + bridge module)."""
        return bool(self.bridge_instance and self.bridge_secret_encrypted)


class StatusRule(Base):
    """One row of a tenant's rule table: Teams status category -> DND action and chat text."""

    __tablename__ = "status_rule"
    __table_args__ = (
        UniqueConstraint("tenant_id", "category"),
        CheckConstraint(f"dnd_action IN ({_values(DndAction)})", name="dnd_action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(30))
    dnd_action: Mapped[str] = mapped_column(String(10))
    chat_text: Mapped[str | None] = mapped_column(String(255), nullable=True)

    tenant: Mapped[Tenant] = relationship(back_populates="rules")


class TenantHealth(Base):
    """What an operator looks at first: last success, last error, throttling, counters."""

    __tablename__ = "tenant_health"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    throttled_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    secret_expiry_warning: Mapped[str | None] = mapped_column(Text, nullable=True)
    polls_ok: Mapped[int] = mapped_column(Integer, default=0)
    polls_failed: Mapped[int] = mapped_column(Integer, default=0)
    throttle_count: Mapped[int] = mapped_column(Integer, default=0)
    changes_applied: Mapped[int] = mapped_column(Integer, default=0)

    tenant: Mapped[Tenant] = relationship(back_populates="health")
