"""A tenant (one Microsoft 365 tenant + one STARFACE PBX), its status rule table and its health.

Secrets live only in ``*_encrypted`` columns (see models/crypto.py); nothing here decrypts them implicitly.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from models.base import Base, utcnow
from models.types import JsonDocument, UTCDateTime
from presence.linking import SelectionMode
from presence.policy import ChatSymbol, DndAction, TeamsPresenceMode

DEFAULT_LOGIN_BASE_URL = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com"
DEFAULT_BRIDGE_INSTANCE = "TeamsConnectBridge"
DEFAULT_POLL_INTERVAL_S = 1.0  # a floor: the scheduler stretches it to the tenant's Graph budget
#: Which Entra app a tenant signs in with: the customer's own registration, or the provider's one.
MICROSOFT_APPS = ("own", "provider")


SLUG_MAX = 60
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"})


def slugify(name: str) -> str:
    """`Büro Köln` -> `buero-koeln`, `TeamsConnect Vertrieb` -> `teamsconnect-vertrieb`; never empty or all
    digits (a name without Latin letters gives `tenant`, a number gets a `t-` prefix)."""
    text = unicodedata.normalize("NFKD", name.translate(_GERMAN))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:SLUG_MAX].strip("-") or "tenant"
    return f"t-{slug}"[:SLUG_MAX] if slug.isdigit() else slug


def _slug_default(context: Any) -> str:
    """A row stored without the service (tests, fixtures) gets its name's slug (service: made unique)."""
    return slugify(context.get_current_parameters()["name"])


def _values(enum_type: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_type)


class Tenant(Base):
    """One customer: credentials, options and user selection. Polled when ``next_poll_at`` is due."""

    __tablename__ = "tenant"
    __table_args__ = (
        CheckConstraint(f"teams_presence_mode IN ({_values(TeamsPresenceMode)})", name="teams_presence_mode"),
        CheckConstraint(f"selection_mode IN ({_values(SelectionMode)})", name="selection_mode"),
        CheckConstraint("poll_interval_s > 0", name="poll_interval_positive"),
        CheckConstraint("ms_app IN ('own', 'provider')", name="ms_app"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # the instance name, as in the module
    #: Derived from the name once (tenants/naming.py) and kept: for URLs and commands.
    slug: Mapped[str] = mapped_column(String(SLUG_MAX), unique=True, default=_slug_default)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    log_level: Mapped[str] = mapped_column(String(10), default="INFO")

    # Outputs, each switchable per tenant.
    set_dnd: Mapped[bool] = mapped_column(Boolean, default=True)
    set_chat_text: Mapped[bool] = mapped_column(Boolean, default=True)
    set_telephony: Mapped[bool] = mapped_column(Boolean, default=False)
    set_teams_presence: Mapped[bool] = mapped_column(Boolean, default=True)
    teams_presence_mode: Mapped[str] = mapped_column(
        String(20), default=TeamsPresenceMode.DND_PRESENTING.value,
        server_default=TeamsPresenceMode.DND_PRESENTING.value,
    )
    ringing_counts_as_call: Mapped[bool] = mapped_column(Boolean, default=False)
    # Teams leads unless the tenant keeps a DND set by hand until the user clears it (issue 11).
    respect_manual_dnd: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    manual_dnd_to_teams: Mapped[bool] = mapped_column(Boolean, default=False)

    # User selection.
    selection_mode: Mapped[str] = mapped_column(String(20), default=SelectionMode.ALL_EXCEPT_LISTED.value)
    starface_group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The group's name when last resolved (at save time or directory sync), for display.
    starface_group_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    login_ids: Mapped[list[str]] = mapped_column(JsonDocument, default=list)

    poll_interval_s: Mapped[float] = mapped_column(Float, default=DEFAULT_POLL_INTERVAL_S)
    # Read by the scheduler tick (scheduler/claims.py): due tenants are claimed with a conditional update.
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    # Microsoft (Entra app with application permissions): the customer's own app (client id + secret), or
    # the provider's multi-tenant app, which needs only the customer's admin consent (no id, no secret here;
    # a tenant that moved from its own app keeps those, unused, until it moves back).
    ms_app: Mapped[str] = mapped_column(String(10), default="own", server_default="own")
    ms_directory_id: Mapped[str] = mapped_column(String(100))
    ms_client_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    ms_client_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
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
    consent: Mapped[TenantConsent | None] = relationship(back_populates="tenant",
                                                         cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, name={self.name!r})"

    @property
    def uses_provider_app(self) -> bool:
        return self.ms_app == "provider"
    def teams_leads(self) -> bool:
        """The option's name before issue 11 (read by the admin API until it shows respect_manual_dnd)."""
        return not self.respect_manual_dnd

    @hybrid_property
    def has_bridge(self) -> bool:
        """True when the tenant runs tier 2 (REST + bridge module); also usable in a query."""
        return bool(self.bridge_instance and self.bridge_secret_encrypted)

    @has_bridge.inplace.expression
    @classmethod
    def _has_bridge_expression(cls) -> ColumnElement[bool]:
        return and_(cls.bridge_instance.is_not(None), cls.bridge_instance != "",
                    cls.bridge_secret_encrypted.is_not(None), cls.bridge_secret_encrypted != "")


class StatusRule(Base):
    """One row of a tenant's rule table: Teams status category -> DND action and chat text."""

    __tablename__ = "status_rule"
    __table_args__ = (
        UniqueConstraint("tenant_id", "category"),
        CheckConstraint(f"dnd_action IN ({_values(DndAction)})", name="dnd_action"),
        CheckConstraint(f"chat_symbol IS NULL OR chat_symbol IN ({_values(ChatSymbol)})", name="chat_symbol"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(30))
    dnd_action: Mapped[str] = mapped_column(String(10))
    chat_text: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The STARFACE chat presence symbol this status sets; None keeps the user's (issue 11).
    chat_symbol: Mapped[str | None] = mapped_column(String(20), nullable=True)

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


class TenantConsent(Base):
    """The customer's admin consent to the provider app: what Microsoft answered at our redirect URI, or
    what a token request revealed later (consent revoked)."""

    __tablename__ = "tenant_consent"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'granted', 'refused', 'revoked')", name="consent_status"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    directory_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    link_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tenant: Mapped[Tenant] = relationship(back_populates="consent")
