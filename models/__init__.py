"""Data model (SQLAlchemy 2), engine/session setup, secrets at rest and the applied-state store."""

from models.base import Base, utcnow
from models.findings import Finding
from models.operators import AdminChange, Operator
from models.state import AppliedState, ChangeLog, Target
from models.tenant import StatusRule, Tenant, TenantConsent, TenantHealth
from models.users import UserLink

__all__ = [
    "AdminChange",
    "AppliedState",
    "Base",
    "ChangeLog",
    "Finding",
    "Operator",
    "StatusRule",
    "Target",
    "Tenant",
    "TenantConsent",
    "TenantHealth",
    "UserLink",
    "utcnow",
]
