"""findings: rival syncs and shared PBXs / Entra users, with hysteresis

Revision ID: 0300
Revises: 0100_console
Create Date: 2026-12-01 22:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = '0300'
down_revision: str | None = '0100_console'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('finding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('fix', sa.Text(), nullable=False),
    sa.Column('first_seen', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('window_start', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_count', sa.Integer(), nullable=False),
    sa.Column('quiet_s', sa.Integer(), nullable=False),
    sa.Column('raised_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cleared_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_finding_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_finding')),
    sa.UniqueConstraint('tenant_id', 'kind', 'subject', name=op.f('uq_finding_tenant_id_kind_subject'))
    )
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_finding_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_finding_tenant_id'))
    op.drop_table('finding')
