"""Data model (SQLAlchemy 2), engine/session setup, secrets at rest and the applied-state store."""

from models.base import Base, utcnow
from models.state import AppliedState, ChangeLog, Target
from models.tenant import (
    DndAction,
    SelectionMode,
    StatusRule,
    TeamsPresenceMode,
    Tenant,
    TenantHealth,
)
from models.users import LinkState, UserLink

__all__ = [
    "AppliedState",
    "Base",
    "ChangeLog",
    "DndAction",
    "LinkState",
    "SelectionMode",
    "StatusRule",
    "Target",
    "TeamsPresenceMode",
    "Tenant",
    "TenantHealth",
    "UserLink",
    "utcnow",
]
