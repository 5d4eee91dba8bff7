"""End to end, STARFACE -> Teams: a call on the PBX raises a signed webhook, the web app enqueues it,
a worker sets our Teams presence session, and ending the call clears it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, update

from connectors.graph import GraphError
from embedded.stack import Stack, StackFactory
from models import Target, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from models.store import claim, ensure_row
from simulators.paired import paired_seeds
from sync.events import run_event
from sync.maintenance import run_keep_alive
from tests.support.query_counter import QueryCount, count_queries
from workers.events import GRAPH_PATIENCE_S, handle_starface_event


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(4))


def _availability(stack: Stack, index: int) -> tuple[str, str]:
    presence = stack.presence(index)
    return presence["availability"], presence["activity"]


def test_it_holds_a_teams_session_while_a_starface_call_lasts(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)
    stack.start_worker("w1")
    stack.teams(3, "sign_in")
    login = stack.seeds.login(3)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    # Issue 11: the module's default, DoNotDisturb/Presenting ("Nicht stören"; only DND stops Teams calls).
    stack.until(lambda: _availability(stack, 3) == ("DoNotDisturb", "Presenting"), what="Teams DND")
    stack.pbx.hang_up(login)
    stack.until(lambda: _availability(stack, 3) == ("Available", "Available"), what="the session cleared")
    stack.settle()
    sessions = [c.after["session"] for c in stack.changes("teams")]
    assert sessions == ["DoNotDisturb/Presenting", None]
    assert stack.ms.count("setPresence") == 1 and stack.ms.count("clearPresence") == 1


def test_a_call_event_outlasts_a_graph_throttling_storm(stack: Stack) -> None:
    """Graph throttles setPresence for longer than a handful of Retry-Afters: the call's event keeps trying
    as Graph asks and sets the session once it is let through (chaos suite, 429 storm of 10 s: five
    users on a call stayed ringable in Teams; here no keep-alive runs, so only the event can set it)."""
    stack.add_tenant(poll_interval_s=3600.0)
    stack.start_worker("w1")
    stack.teams(1, "sign_in")
    stack.ms.configure(fractionalRetryAfter=True)
    refusals = 9  # the event used to give up after 6 tries
    stack.ms.add_fault("setPresence", 429, retry_after=0.2, count=refusals)
    login = stack.seeds.login(1)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    stack.until(lambda: _availability(stack, 1) == ("DoNotDisturb", "Presenting"), timeout=60,
                what="Teams DND once Graph lets the session through")
    answers = [entry["status"] for entry in stack.ms.requests("setPresence")["entries"]]
    assert answers == [429] * refusals + [200]


def test_a_call_event_leaves_graph_to_keep_alive_once_its_patience_is_over(stack: Stack) -> None:
    """The other bound: an event received GRAPH_PATIENCE_S ago that Graph still throttles tries once and
    gives up (the call is recorded, so keep-alive sets the session when Graph lets it)."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(2, "sign_in")
    stack.ms.add_fault("setPresence", 429, retry_after=1, count=100)
    received = utcnow() - timedelta(seconds=GRAPH_PATIENCE_S)
    outcome = handle_starface_event.apply(kwargs={
        "tenant_id": tenant_id, "event": _telephony(stack, 2, "ACTIVE", received),
        "received_at": received.isoformat()}).get(timeout=30)
    assert outcome == {"failed": "GraphThrottled"}
    assert stack.ms.count("setPresence") == 1


def test_a_throttling_storms_retries_leave_an_event_its_conflict_retries(stack: Stack) -> None:
    """Celery keeps one retry count per task: an event that retried 125 times for Graph and then meets
    another worker's claim on the user still waits for that claim (it used to give up at once, the count
    being past the conflict limit of 120)."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(2, "sign_in")
    received = utcnow()
    with transaction(stack.runtime.sessions) as session:
        link_id = session.scalars(select(UserLink.id).where(
            UserLink.starface_account_id == stack.seeds.account(2))).one()
        ensure_row(session, tenant_id=tenant_id, user_link_id=link_id, target=Target.TEAMS.value)
        now = utcnow()
        assert claim(session, user_link_id=link_id, target=Target.TEAMS.value, expected_version=1,
                     claim_id="another-worker", claim_fields={"action": "set"},
                     expires_at=now + timedelta(seconds=0.2), now=now)
    storm = 125
    outcome = handle_starface_event.apply(kwargs={
        "tenant_id": tenant_id, "event": _telephony(stack, 2, "ACTIVE", received),
        "received_at": received.isoformat(), "graph_retries": storm}, retries=storm)
    assert outcome.successful(), outcome.traceback
    assert _availability(stack, 2) == ("DoNotDisturb", "Presenting")


def test_it_does_not_echo_our_teams_session_back_as_a_starface_dnd(stack: Stack) -> None:
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(0, "sign_in")
    login = stack.seeds.login(0)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    stack.until(lambda: _availability(stack, 0) == ("DoNotDisturb", "Presenting"), what="Teams DND")
    polls = stack.ms.count("getPresencesByUserId")
    stack.until(lambda: stack.ms.count("getPresencesByUserId") >= polls + 3, what="three more polls")
    assert stack.user(0)["dnd"] is False  # our own DoNotDisturb/Presenting is not a Teams presentation
    assert stack.changes("starface") == []
    stack.pbx.hang_up(login)
    stack.until(lambda: _availability(stack, 0) == ("Available", "Available"), what="the session cleared")


def test_it_uses_dnd_presenting_when_the_tenant_asks_for_it(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0, options={"teams_presence_mode": "dnd_presenting"})
    stack.start_worker("w1")
    stack.teams(1, "sign_in")
    stack.pbx.ring(stack.seeds.login(1))
    stack.pbx.answer(stack.seeds.login(1))
    stack.until(lambda: _availability(stack, 1) == ("DoNotDisturb", "Presenting"), what="Teams DND")


def _telephony(stack: Stack, index: int, state: str, at: datetime) -> dict[str, object]:
    return {"event_id": f"e-{index}-{state}", "type": "telephony", "account": stack.seeds.account(index),
            "login": stack.seeds.login(index), "occurred_at": at.isoformat(), "origin": "user",
            "telephony_state": state, "dnd": None, "chat_presence": None, "chat_presence_message": None}


def test_a_session_that_graph_set_although_our_call_failed_is_cleared_at_the_hang_up(stack: Stack) -> None:
    """Graph applied the setPresence but its answer never reached us (here: later than the client's 10 s
    timeout; a dropped connection is the same): the session exists, though the call failed. The hang-up
    must still clear it (chaos suite, STARFACE down on a loaded machine: a caller who hung up stayed
    "Presenting" in Teams, because the failed set was recorded as no session at all)."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(2, "sign_in")
    started = utcnow()
    stack.ms.add_fault("setPresence", delay_s=10.5)  # applied at once, answered too late
    with pytest.raises(GraphError):
        run_event(stack.runtime, tenant_id, _telephony(stack, 2, "ACTIVE", started))
    assert _availability(stack, 2) == ("DoNotDisturb", "Presenting")  # Graph did set it
    ended = started + timedelta(seconds=5)
    assert run_event(stack.runtime, tenant_id, _telephony(stack, 2, "AVAILABLE", ended))["action"] == "clear"
    assert _availability(stack, 2) == ("Available", "Available")


def test_a_failed_set_is_sent_again_while_the_call_lasts(stack: Stack) -> None:
    """The other half: a session recorded as possibly set is still sent again by the event's own retry
    (Graph answered 503 and set nothing), not taken as standing."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(2, "sign_in")
    started = utcnow()
    stack.ms.add_fault("setPresence", 503, count=1)
    event = _telephony(stack, 2, "ACTIVE", started)
    with pytest.raises(GraphError):
        run_event(stack.runtime, tenant_id, event)
    assert _availability(stack, 2) == ("Available", "Available")
    assert run_event(stack.runtime, tenant_id, event)["action"] != "unchanged"  # the task's retry
    assert _availability(stack, 2) == ("DoNotDisturb", "Presenting")


def test_a_call_event_whose_teams_session_failed_is_not_forgotten(stack: Stack) -> None:
    """Graph refuses the session for a STARFACE call: the call is still recorded, so keep-alive sets the
    session once Graph answers, and the call's start retried after its end changes nothing (chaos suite:
    such a retry used to set a session after the hang-up that nothing cleared)."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(2, "sign_in")
    started = utcnow()
    stack.ms.add_fault("setPresence", 503, count=10)
    with pytest.raises(GraphError):
        run_event(stack.runtime, tenant_id, _telephony(stack, 2, "ACTIVE", started))
    stack.ms.clear_faults()
    assert run_keep_alive(stack.runtime, tenant_id)["refreshed"] == 1  # the call is known: session set
    assert _availability(stack, 2) == ("DoNotDisturb", "Presenting")
    ended = started + timedelta(seconds=5)
    assert run_event(stack.runtime, tenant_id, _telephony(stack, 2, "AVAILABLE", ended))["action"] == "clear"
    # The start event, redelivered late (a retry after Graph failed), is older than the end: nothing set.
    late = run_event(stack.runtime, tenant_id, _telephony(stack, 2, "ACTIVE", started))
    assert late == {"action": "unchanged"}
    assert _availability(stack, 2) == ("Available", "Available")


def _tenant_loads(counted: QueryCount) -> int:
    """Statements that load a tenant's row (not the one that reads its configuration's fingerprint)."""
    return sum(1 for statement in counted.statements
               if re.search(r"FROM tenant\b", statement) and "md5(" not in statement)


def _inserts(counted: QueryCount) -> int:
    return sum(1 for statement in counted.statements if statement.startswith("INSERT INTO applied_state"))


def test_events_load_the_tenant_only_after_its_configuration_changed(stack: Stack) -> None:
    """Each of a burst's echo events (our own DND and chat writes) loaded the tenant with its rules (a third
    of the events worker's time) and inserted-or-ignored the user's two applied-state rows. It keeps the
    tenant now and only reads the rows, and a change by any writer still reaches the next event."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(2, "sign_in")
    started = utcnow()

    def event(state: str, after_s: int) -> dict[str, object]:
        at = started + timedelta(seconds=after_s)
        return run_event(stack.runtime, tenant_id, _telephony(stack, 2, state, at))

    with count_queries(stack.runtime.engine) as first:
        assert event("ACTIVE", 0) == {"action": "set", "session": "DoNotDisturb/Presenting"}
    with count_queries(stack.runtime.engine) as second:
        assert event("AVAILABLE", 5)["action"] == "clear"
    assert (_tenant_loads(first), _tenant_loads(second)) == (1, 0)
    # The first event created the user's applied-state rows; the next only reads them.
    assert (_inserts(first), _inserts(second)) == (2, 0)
    with transaction(stack.runtime.sessions) as session:  # as the CLI or the console would change it
        session.execute(update(Tenant).where(Tenant.id == tenant_id)
                        .values(teams_presence_mode="busy_in_a_call"))
    assert event("ACTIVE", 10) == {"action": "set", "session": "Busy/InACall"}


def test_the_rival_check_of_an_echo_event_costs_no_transaction_of_its_own(stack: Stack) -> None:
    """An echo of our own DND write (origin "integration") is checked for a rival sync against the user's
    STARFACE row, read with the user: it takes as many transactions as the same event set by the user."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    at = utcnow()

    def transactions_of(index: int, origin: str) -> int:
        args = {**_telephony(stack, index, "AVAILABLE", at), "event_id": f"dnd-{index}", "type": "dnd",
                "origin": origin, "telephony_state": None, "dnd": True}
        begins: list[object] = []
        listener = lambda connection: begins.append(connection)  # noqa: E731
        sqlalchemy_event.listen(stack.runtime.engine, "begin", listener)
        try:
            run_event(stack.runtime, tenant_id, args)
        finally:
            sqlalchemy_event.remove(stack.runtime.engine, "begin", listener)
        return len(begins)

    by_the_user = transactions_of(2, "user")
    assert by_the_user >= 1
    assert transactions_of(3, "integration") == by_the_user
