"""The state store: a batch's applied states in one query; compare-and-set with exactly one winner."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from models import AppliedState, ChangeLog
from models.crypto import SecretBox
from models.store import (
    claim,
    claim_many,
    compare_and_set,
    complete_claim,
    complete_claims,
    ensure_rows,
    id_array,
    load_applied_states,
    record_change,
    release_claim,
    release_claims,
)
from tests.support.factories import make_tenant, make_user_links
from tests.support.query_counter import count_queries

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _setup(sessions: sessionmaker[Session], box: SecretBox, users: int = 1) -> tuple[int, list[int]]:
    with sessions.begin() as session:
        tenant = make_tenant(session, box)
        links = make_user_links(session, tenant, users)
        return tenant.id, [link.id for link in links]


def _cas(session: Session, tenant_id: int, link_id: int, version: int | None, dnd: bool,
         observed_at: datetime) -> bool:
    return compare_and_set(
        session, tenant_id=tenant_id, user_link_id=link_id, target="starface", expected_version=version,
        fields={"dnd": dnd}, owned=["dnd"] if dnd else [], observed_at=observed_at,
    )


def test_it_loads_a_whole_batch_in_one_query(sessions: sessionmaker[Session], box: SecretBox) -> None:
    tenant_id, link_ids = _setup(sessions, box, users=650)
    with sessions.begin() as session:
        for link_id in link_ids:
            _cas(session, tenant_id, link_id, None, True, T0)
            compare_and_set(session, tenant_id=tenant_id, user_link_id=link_id, target="teams",
                            expected_version=None, fields={"session": None}, owned=[], observed_at=T0)
    engine: Engine = sessions.kw["bind"]
    with sessions() as session, count_queries(engine) as queries:
        states = load_applied_states(session, link_ids)
    assert queries.count == 1
    assert len(states) == 1300
    assert states[(link_ids[0], "starface")].fields == {"dnd": True}


def test_it_lets_only_the_first_writer_of_a_version_win(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id, (link_id,) = _setup(sessions, box)
    with sessions.begin() as session:
        assert _cas(session, tenant_id, link_id, None, True, T0)
    with sessions.begin() as session:
        assert not _cas(session, tenant_id, link_id, None, False, T0)  # a row exists by now
        assert _cas(session, tenant_id, link_id, 1, False, T0 + timedelta(seconds=1))
        assert not _cas(session, tenant_id, link_id, 1, True, T0 + timedelta(seconds=2))  # stale version
    with sessions() as session:
        row = session.scalars(select(AppliedState)).one()
        assert (row.version, row.fields) == (2, {"dnd": False})


def test_it_never_lets_an_older_observation_overwrite_a_newer_one(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id, (link_id,) = _setup(sessions, box)
    with sessions.begin() as session:
        assert _cas(session, tenant_id, link_id, None, True, T0 + timedelta(seconds=10))
    with sessions.begin() as session:
        assert not _cas(session, tenant_id, link_id, 1, False, T0)
    with sessions() as session:
        row = session.scalars(select(AppliedState)).one()
        assert (row.fields, row.observed_at) == ({"dnd": True}, T0 + timedelta(seconds=10))


def test_it_has_exactly_one_winner_among_racing_threads_on_postgresql(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id, link_ids = _setup(pg_sessions, box, users=20)
    racers = 8
    for link_id in link_ids:
        with pg_sessions.begin() as session:
            assert _cas(session, tenant_id, link_id, None, False, T0)
    wins: list[tuple[int, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(racers)

    def race(racer: int) -> None:
        start.wait()
        for link_id in link_ids:
            with pg_sessions.begin() as session:
                if _cas(session, tenant_id, link_id, 1, racer % 2 == 0, T0 + timedelta(seconds=racer)):
                    with lock:
                        wins.append((link_id, racer))

    threads = [threading.Thread(target=race, args=(racer,)) for racer in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(link for link, _ in wins) == sorted(link_ids)  # one winner per user, never two
    with pg_sessions() as session:
        rows = {row.user_link_id: row for row in session.scalars(select(AppliedState))}
    for link_id, racer in wins:
        assert rows[link_id].version == 2
        assert rows[link_id].fields == {"dnd": racer % 2 == 0}  # the winner's write, not a mix


def test_it_has_exactly_one_winner_when_inserting_concurrently_on_postgresql(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id, link_ids = _setup(pg_sessions, box, users=10)
    racers = 6
    wins: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(racers)

    def race() -> None:
        start.wait()
        for link_id in link_ids:
            with pg_sessions.begin() as session:
                if _cas(session, tenant_id, link_id, None, True, T0):
                    with lock:
                        wins.append(link_id)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(wins) == sorted(link_ids)


def test_it_grants_one_claim_at_a_time_until_it_expires(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id, (link_id,) = _setup(sessions, box)
    with sessions.begin() as session:
        assert _cas(session, tenant_id, link_id, None, False, T0)
    lease = T0 + timedelta(seconds=30)
    with sessions.begin() as session:
        assert claim(session, user_link_id=link_id, target="starface", expected_version=1, claim_id="a",
                     claim_fields={"dnd": True}, expires_at=lease, observed_at=T0, now=T0)
    with sessions.begin() as session:  # same version read by a second worker: loses
        assert not claim(session, user_link_id=link_id, target="starface", expected_version=2,
                         claim_id="b", claim_fields={"dnd": True}, expires_at=lease, observed_at=T0, now=T0)
    with sessions.begin() as session:  # after the lease, a dead worker's claim is taken over
        assert claim(session, user_link_id=link_id, target="starface", expected_version=2, claim_id="b",
                     claim_fields={"dnd": True}, expires_at=lease + timedelta(seconds=60), observed_at=T0,
                     now=lease + timedelta(seconds=1))
    with sessions.begin() as session:
        assert not complete_claim(session, user_link_id=link_id, target="starface", claim_id="a",
                                  fields={"dnd": True}, owned=["dnd"], observed_at=T0, observed_seq=None)
        assert complete_claim(session, user_link_id=link_id, target="starface", claim_id="b",
                              fields={"dnd": True}, owned=["dnd"], observed_at=T0, observed_seq="7")
        record_change(session, tenant_id=tenant_id, user_link_id=link_id, target="starface",
                      before={"dnd": False}, after={"dnd": True}, cause="teams:InACall", observed_at=T0,
                      applied_at=T0 + timedelta(milliseconds=850))
    with sessions() as session:
        row = session.scalars(select(AppliedState)).one()
        assert (row.fields, row.owned, row.claim_id, row.observed_seq) == ({"dnd": True}, ["dnd"], None, "7")
        change = session.scalars(select(ChangeLog)).one()
        assert change.latency_ms == 850.0


def test_a_recorded_state_never_takes_an_updates_claim_or_its_intent(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    """A user's DND event, learned while an update of the same user writes, must wait for the update:
    recording it over the claim would make the update's record fail and wipe its intent, so a DND the
    update had switched on would later pass for the user's own."""
    tenant_id, (link_id,) = _setup(sessions, box)

    def learn_dnd(version: int, now: datetime) -> bool:
        with sessions.begin() as session:
            return compare_and_set(session, tenant_id=tenant_id, user_link_id=link_id, target="starface",
                                   expected_version=version, fields={"dnd_manual": True}, owned=[],
                                   observed_at=T0, now=now)

    with sessions.begin() as session:
        assert _cas(session, tenant_id, link_id, None, False, T0)
        assert claim(session, user_link_id=link_id, target="starface", expected_version=1, claim_id="update",
                     claim_fields={"dnd": "set"}, expires_at=T0 + timedelta(seconds=30), now=T0)
    assert not learn_dnd(2, T0 + timedelta(seconds=1))  # the update is writing: the event retries later
    with sessions.begin() as session:
        assert release_claim(session, user_link_id=link_id, target="starface", claim_id="update") == 3
    assert learn_dnd(3, T0 + timedelta(seconds=2))  # released: recorded, and the intent stays on the row
    with sessions() as session:
        row = load_applied_states(session, [link_id])[(link_id, "starface")]
    assert row.fields == {"dnd_manual": True} and row.claim_fields == {"dnd": "set"}


def test_the_id_array_reaches_postgresql_untyped_so_it_is_parsed_once_not_per_row() -> None:
    # Bound as ::TEXT, PostgreSQL cast the literal again for every row it scanned: 35 ms per poll's read
    # of 650 users' heads instead of about 1 (found by the burst benchmark's PostgreSQL CPU).
    from sqlalchemy.dialects import postgresql

    from models import store

    for statement in (store._HEADS_PG, store._VIEWS_PG, store._STATES_PG):
        sql = str(statement.compile(dialect=postgresql.psycopg.dialect()))
        assert "ANY (CAST(%(ids)s AS INTEGER[]))" in sql, sql


def test_ids_are_bound_as_one_array_literal_of_integers_only() -> None:
    assert id_array([3, 1, 2]) == "{3,1,2}"
    assert id_array([]) == "{}"
    with pytest.raises(ValueError):
        id_array(["1},{2"])  # type: ignore[list-item]  # nothing but integers reaches the statement


def test_a_batch_claims_records_and_releases_user_by_user_as_the_single_calls_do(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id, (first, second, third) = _setup(sessions, box, users=3)
    with sessions.begin() as session:
        ensure_rows(session, tenant_id=tenant_id, target="starface", user_link_ids=[first, second, third])
        ensure_rows(session, tenant_id=tenant_id, target="starface", user_link_ids=[first])  # exists: kept
        assert _cas(session, tenant_id, third, 1, True, T0)  # the third moved on: version 2
    with sessions.begin() as session:
        won = claim_many(session, target="starface", claim_id="c1", expires_at=T0 + timedelta(minutes=1),
                         now=T0, items=[(first, 1, {"dnd": "set"}), (second, 1, {"dnd": "set"}),
                                        (third, 1, {"dnd": "set"})])
        assert won == {first, second}  # the third's plan was made from a version that is gone
    with sessions.begin() as session:
        recorded = complete_claims(session, target="starface", claim_id="c1", now=T0, items=[
            (first, {"dnd": True, "chat_text": "Im Gespräch"}, ["dnd", "chat_text"], T0, "seq-9"),
            (third, {"dnd": False}, [], None, None)])  # not held under c1: not recorded
        assert recorded == {first}
        released = release_claims(session, target="starface", claim_id="c1", user_link_ids=[second])
        assert released == {second: 3}
    with sessions() as session:
        rows = {row.user_link_id: row for row in session.scalars(select(AppliedState))}
    assert (rows[first].version, rows[first].fields, sorted(rows[first].owned)) == (
        3, {"dnd": True, "chat_text": "Im Gespräch"}, ["chat_text", "dnd"])
    assert (rows[first].observed_at, rows[first].observed_seq, rows[first].claim_id) == (T0, "seq-9", None)
    assert (rows[second].version, rows[second].fields, rows[second].claim_id) == (3, {}, None)
    assert (rows[third].version, rows[third].fields) == (2, {"dnd": True})
