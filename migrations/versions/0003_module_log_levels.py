"""Tenant log levels are the STARFACE module's (issue 11): ERROR, WARN, INFO, DEBUG, TRACE.

Stored Python names are renamed: WARNING -> WARN, CRITICAL -> ERROR (the nearest module level).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE tenant SET log_level = 'WARN' WHERE log_level = 'WARNING'")
    op.execute("UPDATE tenant SET log_level = 'ERROR' WHERE log_level = 'CRITICAL'")


def downgrade() -> None:
    op.execute("UPDATE tenant SET log_level = 'WARNING' WHERE log_level = 'WARN'")
    op.execute("UPDATE tenant SET log_level = 'DEBUG' WHERE log_level = 'TRACE'")
