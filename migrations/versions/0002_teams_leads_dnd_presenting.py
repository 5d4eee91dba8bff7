"""Behave as the STARFACE module (issue 11): a STARFACE call shows as DoNotDisturb/Presenting by default,
and Teams leads over a manual DND by default, with "respect a DND set by hand" as the option.

`teams_leads` becomes `respect_manual_dnd` = NOT teams_leads, so every stored tenant keeps behaving as it
did: the old default (teams_leads=false, STARFACE wins) maps to respect_manual_dnd=true. New tenants get
respect_manual_dnd=false. `teams_presence_mode` only changes its default: stored rows keep their value.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("respect_manual_dnd", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.alter_column("teams_presence_mode", existing_type=sa.String(length=20),
                           server_default="dnd_presenting")
    op.execute("UPDATE tenant SET respect_manual_dnd = NOT teams_leads")
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("teams_leads")


def downgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("teams_leads", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE tenant SET teams_leads = NOT respect_manual_dnd")
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("respect_manual_dnd")
        batch.alter_column("teams_presence_mode", existing_type=sa.String(length=20), server_default=None)
    with op.batch_alter_table("tenant") as batch:
        batch.alter_column("teams_leads", server_default=None)
