"""Findings: problems the service infers from evidence (e.g. a rival sync fighting ours), with hysteresis.

One row per tenant, kind and subject. Each piece of evidence is recorded with ``record_evidence``; the
finding is *raised* (shown) once ``threshold`` pieces arrived within ``window``, and it stays shown until
``quiet`` has passed without new evidence - so it neither appears on one coincidence nor flaps while the
fight goes on. Findings that a check proves directly (two tenants on one PBX) use threshold 1 and are
cleared by ``resolve`` when the check no longer finds them.

The row carries its own quiet period, so whoever reads it (CLI, admin API) decides visibility from the row
alone. ``evidence`` is the newest piece, in words; ``fix`` what the admin does about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow
from models.types import UTCDateTime


@dataclass(frozen=True)
class Hysteresis:
    """A finding appears after ``threshold`` pieces of evidence within ``window`` and clears after
    ``quiet`` without evidence."""

    threshold: int
    window: timedelta
    quiet: timedelta


class Finding(Base):
    """One inferred problem of a tenant (kind + subject), its newest evidence, the fix and the counts."""

    __tablename__ = "finding"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    #: What the finding is about within the tenant ("" = the tenant as a whole, "tenant:7" = with tenant 7).
    subject: Mapped[str] = mapped_column(String(100), default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    fix: Mapped[str] = mapped_column(Text, default="")
    #: First and newest evidence of the current episode, and how many pieces it has had.
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    window_count: Mapped[int] = mapped_column(Integer, default=0)
    quiet_s: Mapped[int] = mapped_column(Integer, default=1800)
    #: When the finding was raised (shown); None while below the threshold or after it cleared.
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def visible(self, now: datetime) -> bool:
        return self.raised_at is not None and now < self.last_seen + timedelta(seconds=self.quiet_s)

    def __repr__(self) -> str:
        return f"Finding(tenant_id={self.tenant_id!r}, kind={self.kind!r}, subject={self.subject!r})"


def _row(session: Session, tenant_id: int, kind: str, subject: str) -> Finding | None:
    return session.scalars(
        select(Finding)
        .where(Finding.tenant_id == tenant_id, Finding.kind == kind, Finding.subject == subject)
        .with_for_update()
    ).one_or_none()


def _new_row(session: Session, tenant_id: int, kind: str, subject: str, now: datetime) -> Finding:
    """Inserts the row; if a concurrent worker inserted it first, takes theirs (locked)."""
    try:
        with session.begin_nested():
            row = Finding(tenant_id=tenant_id, kind=kind, subject=subject, first_seen=now, last_seen=now,
                          count=0, window_start=now, window_count=0)
            session.add(row)
        return row
    except IntegrityError:
        existing = _row(session, tenant_id, kind, subject)
        assert existing is not None
        return existing


def record_evidence(session: Session, tenant_id: int, kind: str, evidence: str, fix: str, rule: Hysteresis,
                    now: datetime | None = None, subject: str = "") -> Finding:
    """Counts one piece of evidence; raises the finding once the rule's threshold is met in its window."""
    now = now or utcnow()
    row = _row(session, tenant_id, kind, subject) or _new_row(session, tenant_id, kind, subject, now)
    if row.raised_at is not None and not row.visible(now):  # quiet long enough: the last episode ended
        row.cleared_at, row.raised_at = row.last_seen + timedelta(seconds=row.quiet_s), None
    if row.raised_at is None and (row.window_count == 0 or now - row.window_start > rule.window):
        row.window_start, row.window_count, row.first_seen, row.count = now, 0, now, 0  # a new episode
    row.window_count += 1
    row.count += 1
    row.last_seen = now
    row.evidence, row.fix, row.quiet_s = evidence[:2000], fix[:2000], int(rule.quiet.total_seconds())
    if row.raised_at is None and row.window_count >= rule.threshold:
        row.raised_at, row.cleared_at = now, None
    return row


def resolve(session: Session, tenant_id: int, kind: str, keep_subjects: set[str],
            now: datetime | None = None) -> int:
    """Clears the tenant's findings of ``kind`` whose subject a direct check no longer finds."""
    now = now or utcnow()
    cleared = 0
    for row in session.scalars(select(Finding).where(Finding.tenant_id == tenant_id, Finding.kind == kind)):
        if row.subject not in keep_subjects and row.raised_at is not None:
            row.raised_at, row.cleared_at = None, now
            row.window_count = 0
            cleared += 1
    return cleared


def finding_list(session: Session, tenant_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The tenant's shown findings, newest evidence first: kind, subject, evidence, fix, first/last seen,
    count."""
    now = now or utcnow()
    rows = session.scalars(select(Finding).where(Finding.tenant_id == tenant_id)
                           .order_by(Finding.last_seen.desc(), Finding.id))
    return [{"kind": row.kind, "subject": row.subject, "evidence": row.evidence, "fix": row.fix,
             "first_seen": row.first_seen, "last_seen": row.last_seen, "count": row.count}
            for row in rows if row.visible(now)]
