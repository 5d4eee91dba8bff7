"""The state store: load a batch's applied states in one query; change them only by compare-and-set.

Contract of every writer here: it returns True when *it* changed the row and False when another writer got
there first or its observation is older than the recorded one. A False is not an error: the caller drops
its work (healthchecks' ``num_updated != 1`` pattern). Callers commit the surrounding transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Integer, any_, bindparam, cast, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from models.base import utcnow
from models.state import AppliedState, ChangeLog, Target

StateKey = tuple[int, str]  # (user_link_id, target)


class AppliedView(Protocol):
    """What a poll reads of an applied state, as a plain result row (``read_applied_states``)."""

    @property
    def id(self) -> int: ...
    @property
    def fields(self) -> dict[str, Any]: ...
    @property
    def version(self) -> int: ...
    @property
    def claim_id(self) -> str | None: ...
    @property
    def claim_expires_at(self) -> datetime | None: ...
    @property
    def claim_fields(self) -> dict[str, Any] | None: ...


_VIEW_COLUMNS = (AppliedState.id, AppliedState.user_link_id, AppliedState.target, AppliedState.fields,
                 AppliedState.version, AppliedState.claim_id, AppliedState.claim_expires_at,
                 AppliedState.claim_fields)

# On PostgreSQL the users come as ONE array parameter (``id_array``): the statement text is the same for
# every batch size, so neither SQLAlchemy nor psycopg re-renders or re-prepares it (650 IN-parameters cost
# a quarter of a poll), and the statements every poll runs are built once and run on the session's
# connection, not through the ORM (building and compiling them per call cost more CPU than PostgreSQL's
# answer, issue 14). The parameter is left untyped, so PostgreSQL takes it as integer[] and parses it once
# per execution: typed as text (``::TEXT``) the cast was evaluated per row scanned, 35 ms per poll's read.
_OF_USERS_PG = AppliedState.user_link_id == any_(cast(bindparam("ids", type_=NullType()), ARRAY(Integer)))
_STATES_PG = select(AppliedState).where(_OF_USERS_PG)
_VIEWS_PG = select(*_VIEW_COLUMNS).where(_OF_USERS_PG)
_HEADS_PG = (
    select(AppliedState.user_link_id,
           func.max(AppliedState.id).filter(AppliedState.target == Target.STARFACE.value),
           func.max(AppliedState.version).filter(AppliedState.target == Target.STARFACE.value),
           func.max(AppliedState.id).filter(AppliedState.target == Target.TEAMS.value),
           func.max(AppliedState.version).filter(AppliedState.target == Target.TEAMS.value))
    .where(_OF_USERS_PG).group_by(AppliedState.user_link_id))


def load_applied_states(session: Session, user_link_ids: Iterable[int]) -> dict[StateKey, AppliedState]:
    """All applied states (every target) of these users, in ONE query, keyed by (user link id, target)."""
    ids = list(user_link_ids)
    if not ids:
        return {}
    if _postgresql(session):
        rows = session.scalars(_STATES_PG, {"ids": id_array(ids)})
    else:
        rows = session.scalars(select(AppliedState).where(AppliedState.user_link_id.in_(ids)))
    return {(row.user_link_id, row.target): row for row in rows}


def read_applied_states(session: Session, user_link_ids: Iterable[int]) -> dict[StateKey, AppliedView]:
    """The same rows as ``load_applied_states``, read-only and as plain result rows: what every poll reads
    for two rows per user each cycle, where ORM objects cost 70.5 against 20.9 us of CPU per user
    (bench/decide.py, bench/results/decide.json)."""
    ids = list(user_link_ids)
    if not ids:
        return {}
    if _postgresql(session):
        rows = session.connection().execute(_VIEWS_PG, {"ids": id_array(ids)})
    else:
        rows = session.execute(select(*_VIEW_COLUMNS).where(AppliedState.user_link_id.in_(ids)))
    return {(row.user_link_id, row.target): row for row in rows}  # type: ignore[misc]


#: (row id, version) of a user's STARFACE applied state, then of its Teams one; None where there is no row.
AppliedHeads = tuple[int | None, int | None, int | None, int | None]
NO_APPLIED_ROWS: AppliedHeads = (None, None, None, None)


def applied_heads(starface: AppliedView | None, teams: AppliedView | None) -> AppliedHeads:
    """A user's heads from its rows as ``read_applied_states`` returns them."""
    return (starface.id if starface else None, starface.version if starface else None,
            teams.id if teams else None, teams.version if teams else None)


def read_applied_heads(session: Session, user_link_ids: Iterable[int]) -> dict[int, AppliedHeads] | None:
    """Only (row id, version) of the same rows, one result row per user: every change of a row bumps its
    version, so this names its state without reading its documents (JSON parsing is four fifths of
    ``read_applied_states``). Users without any row are left out (``NO_APPLIED_ROWS``).

    None on SQLite (the embedded mode), which may give a new row the id of a deleted one: there (id,
    version) does not name one state."""
    if not _postgresql(session):
        return None
    ids = list(user_link_ids)
    if not ids:
        return {}
    rows = session.connection().execute(_HEADS_PG, {"ids": id_array(ids)})
    return {link_id: (starface_id, starface_version, teams_id, teams_version)
            for link_id, starface_id, starface_version, teams_id, teams_version in rows}


def id_array(ids: Iterable[int]) -> str:
    """Integer ids as ONE PostgreSQL array literal ('{1,2,3}'), bound untyped and cast to an array in the
    statement (so PostgreSQL parses it once, as the parameter's value). psycopg dumps a Python list
    element by element in Python: 919 against 247 us of CPU for the 650 ids of a poll batch, a twentieth
    of the batch. ``int()`` keeps anything else out."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def is_claimed(row: AppliedState | AppliedView | None, now: datetime) -> bool:
    """True while some worker holds an unexpired claim on this applied state (its write is in flight)."""
    return (row is not None and row.claim_id is not None and row.claim_expires_at is not None
            and row.claim_expires_at > now)


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


# The single-row writers below (an event task's, a lone update's) run statements built once on the table,
# not on the ORM class: an ORM-enabled UPDATE went through the ORM's bulk-update path, and a statement
# built per call computed its cache key every time; with the ORM insert that was a third of an event
# task's CPU in a 2,000-change burst (issue 14). Bound names carry a prefix: SQLAlchemy reserves a
# column's own name for the SET clause.
_TABLE = AppliedState.__table__
_COLUMNS = _TABLE.c
_THIS_ROW = (_COLUMNS.user_link_id == bindparam("p_link"), _COLUMNS.target == bindparam("p_target"))
_UNCLAIMED = or_(_COLUMNS.claim_id.is_(None), _COLUMNS.claim_expires_at < bindparam("p_now"))
_NO_OBSERVATION = _COLUMNS.observed_at.is_(None)
_NOT_NEWER = or_(_COLUMNS.observed_at.is_(None), _COLUMNS.observed_at <= bindparam("p_observed_at"))


def _compare_and_set_statement(observed: bool):  # type: ignore[no-untyped-def]
    return (
        update(_TABLE)
        .where(*_THIS_ROW, _COLUMNS.version == bindparam("p_version"), _UNCLAIMED,
               _NOT_NEWER if observed else _NO_OBSERVATION)
        .values(version=_COLUMNS.version + 1, fields=bindparam("p_fields"), owned=bindparam("p_owned"),
                observed_at=bindparam("p_observed_at"), observed_seq=bindparam("p_observed_seq"),
                applied_at=bindparam("p_now"))
    )


def _claim_statement(observed: bool):  # type: ignore[no-untyped-def]
    conditions = [*_THIS_ROW, _COLUMNS.version == bindparam("p_version"), _UNCLAIMED]
    return (
        update(_TABLE)
        .where(*conditions, *([_NOT_NEWER] if observed else []))
        .values(version=_COLUMNS.version + 1, claim_id=bindparam("p_claim_id"),
                claim_expires_at=bindparam("p_expires_at"), claim_fields=bindparam("p_claim_fields"))
    )


#: Keyed by whether an observation time takes part (compare-and-set: "not newer than it", else "none
#: recorded"; a claim: "not newer than it", else no condition).
_COMPARE_AND_SET = {observed: _compare_and_set_statement(observed) for observed in (False, True)}
_CLAIM = {observed: _claim_statement(observed) for observed in (False, True)}
_COMPLETE_CLAIM = (
    update(_TABLE)
    .where(*_THIS_ROW, _COLUMNS.claim_id == bindparam("p_claim_id"))
    .values(version=_COLUMNS.version + 1, fields=bindparam("p_fields"), owned=bindparam("p_owned"),
            observed_at=bindparam("p_observed_at"), observed_seq=bindparam("p_observed_seq"),
            applied_at=bindparam("p_now"), claim_id=None, claim_expires_at=None, claim_fields=None)
)
_RELEASE_CLAIM = (
    update(_TABLE)
    .where(*_THIS_ROW, _COLUMNS.claim_id == bindparam("p_claim_id"))
    .values(version=_COLUMNS.version + 1, claim_id=None, claim_expires_at=None)
    .returning(_COLUMNS.version)
)


def _insert_if_missing(session: Session, values: dict[str, Any]) -> bool:
    """INSERT .. ON CONFLICT DO NOTHING of one row; True if it inserted."""
    statement = (_insert(session)(_TABLE).values(**values)
                 .on_conflict_do_nothing(index_elements=["user_link_id", "target"])
                 .returning(_COLUMNS.id))
    # RETURNING, not rowcount: psycopg reports no rowcount for INSERT .. ON CONFLICT DO NOTHING.
    return session.connection().execute(statement).first() is not None


def compare_and_set(
    session: Session,
    *,
    tenant_id: int,
    user_link_id: int,
    target: str,
    expected_version: int | None,
    fields: dict[str, Any],
    owned: list[str],
    observed_at: datetime | None,
    observed_seq: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Records an applied state if nobody changed it since ``expected_version`` was read.

    ``expected_version=None`` means "I saw no row": the row is inserted unless one exists by now. Otherwise
    the row is updated only if its version is still ``expected_version``, no unexpired claim is held on it
    (its holder is writing: its record would fail) and its observation is not newer than ``observed_at``.
    A claim's columns are left as they are: a released or expired claim's intent stays for the next
    holder (sync/apply.py). Of two concurrent writers exactly one gets True.
    """
    now = now or utcnow()
    if expected_version is None:
        return _insert_if_missing(session, {
            "tenant_id": tenant_id, "user_link_id": user_link_id, "target": target, "version": 1,
            "fields": fields, "owned": sorted(owned), "observed_at": observed_at,
            "observed_seq": observed_seq, "applied_at": now})
    return session.connection().execute(_COMPARE_AND_SET[observed_at is not None], {
        "p_link": user_link_id, "p_target": target, "p_version": expected_version, "p_now": now,
        "p_fields": fields, "p_owned": sorted(owned), "p_observed_at": observed_at,
        "p_observed_seq": observed_seq}).rowcount == 1


def ensure_row(session: Session, *, tenant_id: int, user_link_id: int, target: str) -> None:
    """Creates an empty applied-state row if none exists (so that claims always have a row to update)."""
    _insert_if_missing(session, {"tenant_id": tenant_id, "user_link_id": user_link_id, "target": target,
                                 "version": 1, "fields": {}, "owned": []})


def claim(
    session: Session,
    *,
    user_link_id: int,
    target: str,
    expected_version: int,
    claim_id: str,
    claim_fields: dict[str, Any],
    expires_at: datetime,
    observed_at: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Takes the right to write this user's ``target`` before the external write (exactly-once writes).

    Wins only if the version is unchanged, no other unexpired claim is held and, when ``observed_at`` is
    given, the recorded observation is not newer. A claim of a dead worker expires at ``expires_at``.
    """
    return session.connection().execute(_CLAIM[observed_at is not None], {
        "p_link": user_link_id, "p_target": target, "p_version": expected_version, "p_now": now or utcnow(),
        "p_observed_at": observed_at, "p_claim_id": claim_id, "p_expires_at": expires_at,
        "p_claim_fields": claim_fields}).rowcount == 1


def complete_claim(
    session: Session,
    *,
    user_link_id: int,
    target: str,
    claim_id: str,
    fields: dict[str, Any],
    owned: list[str],
    observed_at: datetime | None,
    observed_seq: str | None,
    now: datetime | None = None,
) -> bool:
    """Records what the claim holder wrote and releases the claim; False if the claim was lost meanwhile."""
    return session.connection().execute(_COMPLETE_CLAIM, {
        "p_link": user_link_id, "p_target": target, "p_claim_id": claim_id, "p_fields": fields,
        "p_owned": sorted(owned), "p_observed_at": observed_at, "p_observed_seq": observed_seq,
        "p_now": now or utcnow()}).rowcount == 1


def release_claim(session: Session, *, user_link_id: int, target: str, claim_id: str) -> int | None:
    """Gives a claim back unchanged (the external write failed and will be retried).

    The claim's fields (the intent of the work) stay on the row: a write may have gone through before the
    failure, and the next claim holder reads them to recognise it as ours (sync/apply.py). Only a
    completed claim clears them. Returns the row's new version, which a retry of the same work must
    expect; None if the claim was not held any more.
    """
    return session.connection().execute(_RELEASE_CLAIM, {
        "p_link": user_link_id, "p_target": target, "p_claim_id": claim_id}).scalar()


def record_change(
    session: Session,
    *,
    tenant_id: int,
    user_link_id: int | None,
    target: str,
    before: dict[str, Any],
    after: dict[str, Any],
    cause: str,
    observed_at: datetime | None,
    applied_at: datetime | None = None,
) -> None:
    """Appends one row to the audit trail (in the caller's transaction, with the applied-state change)."""
    append_changes(session, [{"tenant_id": tenant_id, "user_link_id": user_link_id, "target": target,
                              "before": before, "after": after, "cause": cause, "observed_at": observed_at,
                              "applied_at": applied_at}])


def append_changes(session: Session, entries: list[dict[str, Any]]) -> None:
    """``record_change`` for many rows (each a dict of its arguments but ``session``), in ONE statement
    built once: the ORM's flush of one object per row cost a batch of 2,000 first changes more CPU than its
    SQL."""
    if entries:
        now = utcnow()
        session.connection().execute(insert(ChangeLog.__table__), [
            {**entry, "applied_at": entry.get("applied_at") or now} for entry in entries])


# --- set-based forms for a batch of users (one statement each on PostgreSQL) ------------------------------
#
# Same contracts as the single-row functions above, for many users of one target at once: the STARFACE
# changes one poll found are claimed in ONE statement and recorded in ONE transaction. Each user's row
# still only changes by compare-and-set on its own version and claim, so a batch gives exactly the
# outcome the single-row calls would, user by user. Other databases (SQLite, the embedded mode) run the
# single-row calls in a loop.

# A batch's per-user values travel as ONE JSON document, unpacked by jsonb_to_recordset: psycopg dumps a
# Python list parameter element by element in Python, and the claims' and records' JSON documents as
# lists of strings were a twentieth of an apply worker's CPU in a burst.
_CLAIM_MANY = text("""
UPDATE applied_state AS a
   SET version = a.version + 1, claim_id = :claim_id, claim_expires_at = :expires_at,
       claim_fields = v.claim_fields
  FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(user_link_id integer, version bigint, claim_fields jsonb)
 WHERE a.user_link_id = v.user_link_id AND a.target = :target AND a.version = v.version
   AND (a.claim_id IS NULL OR a.claim_expires_at < :now)
RETURNING a.user_link_id
""")

_COMPLETE_MANY = text("""
UPDATE applied_state AS a
   SET version = a.version + 1, fields = v.fields, owned = v.owned, observed_at = v.observed_at,
       observed_seq = v.observed_seq, applied_at = :now, claim_id = NULL, claim_expires_at = NULL,
       claim_fields = NULL
  FROM jsonb_to_recordset(CAST(:rows AS jsonb))
       AS v(user_link_id integer, fields jsonb, owned jsonb, observed_at timestamptz, observed_seq varchar)
 WHERE a.user_link_id = v.user_link_id AND a.target = :target AND a.claim_id = :claim_id
RETURNING a.user_link_id
""")

_RELEASE_MANY = text("""
UPDATE applied_state
   SET version = version + 1, claim_id = NULL, claim_expires_at = NULL
 WHERE user_link_id = ANY(CAST(:ids AS integer[])) AND target = :target AND claim_id = :claim_id
RETURNING user_link_id, version
""")


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


#: ``ensure_rows``' statement on PostgreSQL: the ids as ONE array parameter (``id_array``), so psycopg
#: dumps no row of parameters per user (a burst of 2,000 first changes creates a row for each).
_ENSURE_ROWS_PG = text("""
INSERT INTO applied_state (tenant_id, user_link_id, target, version, fields, owned, applied_at)
SELECT :tenant_id, ids.user_link_id, :target, 1, '{}'::jsonb, '[]'::jsonb, :now
  FROM unnest(CAST(:ids AS integer[])) AS ids(user_link_id)
ON CONFLICT (user_link_id, target) DO NOTHING
""")
#: Elsewhere (SQLite, the embedded mode) one INSERT of many rows, built once: a multi-VALUES INSERT built
#: per call was compiled anew for every batch size (issue 14).
_ENSURE_ROWS_SQLITE = sqlite_insert(AppliedState.__table__).on_conflict_do_nothing(
    index_elements=["user_link_id", "target"])


def ensure_rows(session: Session, *, tenant_id: int, target: str, user_link_ids: Iterable[int]) -> None:
    """``ensure_row`` for many users in one INSERT .. ON CONFLICT DO NOTHING (one statement of many rows)."""
    ids = sorted(set(user_link_ids))
    if not ids:
        return
    if _postgresql(session):
        session.connection().execute(_ENSURE_ROWS_PG, {"tenant_id": tenant_id, "target": target,
                                                       "ids": id_array(ids), "now": utcnow()})
        return
    session.connection().execute(_ENSURE_ROWS_SQLITE, [
        {"tenant_id": tenant_id, "user_link_id": link_id, "target": target, "version": 1, "fields": {},
         "owned": []} for link_id in ids])


def claim_many(
    session: Session,
    *,
    target: str,
    items: list[tuple[int, int, dict[str, Any]]],
    claim_id: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> set[int]:
    """``claim`` for (user link id, expected version, claim fields) of many users under one claim id;
    returns the user link ids whose claim it won."""
    now = now or utcnow()
    if not items:
        return set()
    if not _postgresql(session):
        return {link_id for link_id, version, fields in items
                if claim(session, user_link_id=link_id, target=target, expected_version=version,
                         claim_id=claim_id, claim_fields=fields, expires_at=expires_at, now=now)}
    batch = json.dumps([{"user_link_id": link_id, "version": version, "claim_fields": fields}
                        for link_id, version, fields in items])
    rows = session.execute(_CLAIM_MANY, {"rows": batch, "claim_id": claim_id, "expires_at": expires_at,
                                         "now": now, "target": target})
    return {link_id for (link_id,) in rows}


def complete_claims(
    session: Session,
    *,
    target: str,
    claim_id: str,
    items: list[tuple[int, dict[str, Any], list[str], datetime | None, str | None]],
    now: datetime | None = None,
) -> set[int]:
    """``complete_claim`` for (user link id, fields, owned, observed_at, observed_seq) of many users held
    under ``claim_id``; returns the user link ids recorded (a claim lost meanwhile is not)."""
    now = now or utcnow()
    if not items:
        return set()
    if not _postgresql(session):
        return {link_id for link_id, fields, owned, observed_at, observed_seq in items
                if complete_claim(session, user_link_id=link_id, target=target, claim_id=claim_id,
                                  fields=fields, owned=owned, observed_at=observed_at,
                                  observed_seq=observed_seq, now=now)}
    batch = json.dumps([{"user_link_id": link_id, "fields": fields, "owned": sorted(owned),
                         "observed_at": observed_at.isoformat() if observed_at is not None else None,
                         "observed_seq": observed_seq}
                        for link_id, fields, owned, observed_at, observed_seq in items])
    rows = session.execute(_COMPLETE_MANY, {"rows": batch, "claim_id": claim_id, "target": target,
                                            "now": now})
    return {link_id for (link_id,) in rows}


def release_claims(session: Session, *, target: str, claim_id: str,
                   user_link_ids: list[int]) -> dict[int, int]:
    """``release_claim`` for many users held under ``claim_id``: {user link id: new version} of those
    still held."""
    if not user_link_ids:
        return {}
    if not _postgresql(session):
        released = {link_id: release_claim(session, user_link_id=link_id, target=target, claim_id=claim_id)
                    for link_id in user_link_ids}
        return {link_id: version for link_id, version in released.items() if version is not None}
    rows = session.execute(_RELEASE_MANY, {"ids": id_array(user_link_ids), "target": target,
                                           "claim_id": claim_id})
    return {link_id: version for link_id, version in rows}
