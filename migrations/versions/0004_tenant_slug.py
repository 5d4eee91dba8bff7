"""Instance names as in the STARFACE module (issue 11): any letters, spaces and punctuation; a stored,
unique slug derived from the name serves URLs and commands.

Existing names (letters, digits, '.', '_', '-') get their slug here; the derivation is a frozen copy of
tenants/naming.py's, so this migration never changes when the application code does.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"})


def _slug(name: str, taken: set[str]) -> str:
    text = unicodedata.normalize("NFKD", name.translate(_GERMAN))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    base = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:60].strip("-") or "tenant"
    base = f"t-{base}"[:60] if base.isdigit() else base
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base[:60 - len(str(n)) - 1]}-{n}", n + 1
    return slug


def upgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("slug", sa.String(length=60), nullable=True))
    conn = op.get_bind()
    taken: set[str] = set()
    for tenant_id, name in conn.execute(sa.text("SELECT id, name FROM tenant ORDER BY id")).all():
        slug = _slug(name, taken)
        taken.add(slug)
        conn.execute(sa.text("UPDATE tenant SET slug = :slug WHERE id = :id"), {"slug": slug, "id": tenant_id})
    with op.batch_alter_table("tenant") as batch:
        batch.alter_column("slug", existing_type=sa.String(length=60), nullable=False)
        batch.create_unique_constraint(batch.f("uq_tenant_slug"), ["slug"])


def downgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.drop_constraint(batch.f("uq_tenant_slug"), type_="unique")
        batch.drop_column("slug")
