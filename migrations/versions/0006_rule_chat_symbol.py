"""Per-status chat symbol (issue 11): a rule row may set the STARFACE chat presence symbol (AVAILABLE,
AWAY, DO_NOT_DISTURB, EXTENDED_AWAY) or keep the user's (NULL).

Existing rows stay NULL (keep), so stored tenants behave as before; new tenants get the defaults
(DO_NOT_DISTURB for a Teams call, presenting and do-not-disturb).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("status_rule") as batch:
        batch.add_column(sa.Column("chat_symbol", sa.String(length=20), nullable=True))
        batch.create_check_constraint(
            "chat_symbol",
            "chat_symbol IS NULL OR chat_symbol IN ('AVAILABLE', 'AWAY', 'DO_NOT_DISTURB', 'EXTENDED_AWAY')",
        )


def downgrade() -> None:
    with op.batch_alter_table("status_rule") as batch:
        batch.drop_constraint("chat_symbol", type_="check")
        batch.drop_column("chat_symbol")
