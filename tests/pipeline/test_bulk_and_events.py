"""Issue 14: a poll's changes are applied together under the PBX's limits, and STARFACE call events never
wait behind them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from connectors.starface import BridgeSecretRejected, BridgeUnknownAccount
from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models import ChangeLog, Tenant
from models.db import transaction
from presence import Category, StarfaceApplied, StarfacePlan
from presence.policy import DndAction
from simulators.paired import paired_seeds
from sync.apply import (
    CHAT_READ_AHEAD_MAX_AGE_S,
    ChatReadAhead,
    LeaseRunningOut,
    chat_read_ahead_users,
    pbx_gate,
    read_and_write,
    run_apply_batch,
)
from sync.coordination import LocalCoordination, PbxGate, PbxLimits
from sync.poll import run_poll
from sync.ports import CollectingQueue
from tenants.policy import policy_for
from tenants.service import load_tenant
from workers.task_queue import CELERY_QUEUE

USERS = 40


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(USERS + 2))


def _decide(stack: Stack, users: range) -> CollectingQueue:
    """Every user in ``users`` starts a Teams call; one poll decides their updates (not sent yet)."""
    for index in users:
        stack.teams(index, "sign_in")
        stack.teams(index, "call_start")
    decided = CollectingQueue()
    batch = [pair for pair in stack.linked_batch()]
    run_poll(stack.runtime, stack.tenant_id, batch, decided)
    assert len(decided.applies) == len(users)
    return decided


def test_no_pbx_ever_sees_more_requests_in_flight_than_its_limit(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)  # only the polls this test sends
    items = [item for _, batch in _decide(stack, range(USERS)).apply_batches for item in batch]
    # A PBX that takes 30 ms per REST request, so that requests overlap if nothing holds them back.
    stack.pbx.inject_fault("/rest/users/*", delay_s=0.03, count=-1)
    stack.pbx.reset_concurrency()
    stack.start_worker("w1", concurrency=2)
    stack.start_worker("w2", concurrency=2)
    # Four batch tasks of ten users, run by four worker processes at once, each up to four threads.
    for start in range(0, USERS, 10):
        CELERY_QUEUE.apply_batch(stack.tenant_id, items[start:start + 10])
    wait_until(lambda: all(stack.user(i)["dnd"] for i in range(USERS)), timeout=60, what="every DND on")
    stack.settle()
    limit = stack.runtime.settings.starface_max_in_flight
    peak = stack.pbx.concurrency()["peak"]
    assert 2 <= peak <= limit  # concurrent, never above the limit
    assert [stack.phoneconfig_puts(i) for i in range(USERS)] == [1] * USERS
    assert len(stack.changes("starface")) == USERS


def test_a_call_event_is_handled_while_a_burst_of_updates_is_still_being_applied(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)
    decided = _decide(stack, range(USERS))
    # A slow PBX: the burst takes many seconds (each REST request 200 ms, at most 4 in flight).
    stack.pbx.inject_fault("/rest/users/*", delay_s=0.2, count=-1)
    for tenant_id, batch in decided.apply_batches:
        CELERY_QUEUE.apply_batch(tenant_id, batch)
    for tenant_id, batch in decided.apply_batches * 20:  # and a flood of duplicates behind it
        CELERY_QUEUE.apply_batch(tenant_id, batch)
    stack.start_worker("w1", concurrency=1)  # one process for polls and updates, the events reserved
    wait_until(lambda: stack.pbx.concurrency()["inFlight"] > 0, timeout=30, what="the burst to start")
    login = stack.seeds.login(USERS + 1)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    wait_until(lambda: stack.ms.count("setPresence") >= 1, timeout=30, what="the Teams session for the call")
    # Ordering, not speed: the event was handled before the first batch of updates was recorded.
    assert stack.changes("starface") == []
    stack.pbx.clear_faults()
    wait_until(lambda: len(stack.changes("starface")) == USERS, timeout=60, what="the burst applied")


def test_a_struggling_pbx_gets_fewer_requests_and_recovers() -> None:
    now = [0.0]
    coordination = LocalCoordination(clock=lambda: now[0])
    limits = PbxLimits(max_in_flight=4, max_per_s=1000.0, recover_s=5.0)
    holders = [f"h{i}" for i in range(5)]
    granted = [coordination.pbx_acquire("pbx", limits, h) == 0.0 for h in holders]
    assert granted == [True] * 4 + [False]  # four in flight at most
    for holder in holders[:4]:
        coordination.pbx_release("pbx", holder)
    coordination.pbx_penalize("pbx", limits)  # a 5xx
    coordination.pbx_penalize("pbx", limits)  # a second one right after does not halve again
    now[0] += 0.1
    granted = [coordination.pbx_acquire("pbx", limits, h) == 0.0 for h in holders]
    assert granted == [True, True, False, False, False]
    for holder in holders:
        coordination.pbx_release("pbx", holder)
    now[0] += 10.0  # two recovery steps without trouble
    granted = [coordination.pbx_acquire("pbx", limits, h) == 0.0 for h in holders]
    assert granted == [True] * 4 + [False]


def test_the_gate_penalizes_a_transient_failure_but_not_a_permanent_one() -> None:
    class Transient(Exception):
        permanent = False

    class Permanent(Exception):
        permanent = True

    coordination = LocalCoordination()
    limits = PbxLimits(max_in_flight=4, max_per_s=1000.0)
    gate = PbxGate(coordination, "pbx", limits)
    with pytest.raises(Permanent), gate.request():
        raise Permanent
    assert [coordination.pbx_acquire("pbx", limits, f"a{i}") for i in range(4)] == [0.0] * 4
    for i in range(4):
        coordination.pbx_release("pbx", f"a{i}")
    with pytest.raises(Transient), gate.request():
        raise Transient
    assert [coordination.pbx_acquire("pbx", limits, f"b{i}") == 0.0 for i in range(3)] == [True, True, False]


def test_small_tenants_polled_in_one_task_get_their_changes(stack: Stack) -> None:
    others = [stack.seeds.login(i) for i in range(20, USERS + 2)]
    first = stack.add_tenant("first", selection={"mode": "all_except_listed", "login_ids": others})
    mine = [stack.seeds.login(i) for i in range(20)]
    second = stack.add_tenant("second", selection={"mode": "all_except_listed", "login_ids": mine})
    for index in (3, 30):  # one user of each tenant
        stack.teams(index, "sign_in")
        stack.teams(index, "call_start")
    stack.start_worker("w1", concurrency=1)
    requests = stack.ms.count("getPresencesByUserId")
    stack.until(lambda: stack.user(3)["dnd"] and stack.user(30)["dnd"], timeout=30, what="both DNDs on")
    assert stack.ms.count("getPresencesByUserId") - requests >= 2  # a Graph request per tenant
    stack.settle()
    with transaction(stack.runtime.sessions) as session:
        tenants = dict(session.execute(select(ChangeLog.user_link_id, ChangeLog.tenant_id)).all())
    assert sorted(tenants.values()) == sorted([first, second])


def test_a_request_refused_before_sending_gives_its_slot_back_without_a_penalty() -> None:
    """A write stopped by its claim's fence (sync/apply.py: WriteFence) holds no slot and says nothing
    about the PBX's health, although it is a transient failure."""
    coordination = LocalCoordination()
    limits = PbxLimits(max_in_flight=4, max_per_s=1000.0)
    gate = PbxGate(coordination, "pbx", limits)

    def refuse() -> None:
        raise LeaseRunningOut("too late to write")

    sent = []
    with pytest.raises(LeaseRunningOut), gate.request(refuse):
        sent.append("request")
    assert sent == []
    assert [coordination.pbx_acquire("pbx", limits, f"a{i}") for i in range(4)] == [0.0] * 4


def _rpc_calls(stack: Stack, method: str) -> list[str]:
    """The bodies of the bridge calls of ``method`` in the PBX's request log, oldest first."""
    name = f"<methodName>TeamsConnectBridge.{method}</methodName>"
    return [r["body"] for r in stack.pbx.request_log() if r["path"] == "/xml-rpc" and name in r["body"]]


def _state_reads(stack: Stack) -> list[list[int]]:
    """The accounts of each getStates the PBX was asked, oldest first."""
    bodies = _rpc_calls(stack, "getStates")
    return [[int(account) for account in re.findall(r"<int>(\d+)</int>", body)] for body in bodies]


def _tenant(stack: Stack) -> Tenant:
    with transaction(stack.runtime.sessions) as session:
        tenant = load_tenant(session, stack.tenant_id)
    assert tenant is not None
    return tenant


def test_a_batch_reads_its_users_chat_status_together_and_still_decides_by_it(stack: Stack) -> None:
    """One getStates for the next users of a batch, not one per user (3 PBX requests and a tenth per
    change instead of 4); what is shown still decides: a user who already shows the call's text and
    symbol (an update that wrote them and lost its record) is not written again."""
    stack.add_tenant(poll_interval_s=3600.0)
    stack.pbx.app_overwrites_chat(stack.seeds.login(7), "DO_NOT_DISTURB", "On a call in MS Teams")
    decided = _decide(stack, range(USERS))
    stack.pbx.clear_request_log()
    for tenant_id, batch in decided.apply_batches:
        run_apply_batch(stack.runtime, tenant_id, batch, CollectingQueue())
    per_read = chat_read_ahead_users(pbx_gate(stack.runtime, _tenant(stack)).limits)
    reads, chat_writes = len(_state_reads(stack)), len(_rpc_calls(stack, "setChatStatus"))
    assert USERS / per_read <= reads < USERS / 2, (reads, per_read)  # one per user before
    assert chat_writes == USERS - 1  # each user's text once, none where it is shown already
    assert [stack.phoneconfig_puts(i) for i in range(USERS)] == [1] * USERS
    assert {stack.user(i)["chatPresenceMessage"] for i in range(USERS)} == {"On a call in MS Teams"}


def test_a_chat_status_read_ahead_is_used_once_while_fresh_and_an_unknown_account_spoils_no_read(
    stack: Stack,
) -> None:
    stack.add_tenant()
    first, second, third = (stack.seeds.account(i) for i in range(3))
    gone = 999_999  # a user deleted from the PBX after the poll
    clock = [0.0]
    reads = ChatReadAhead(stack.runtime.bridge(_tenant(stack)), [first, gone, second, third], users=3,
                          clock=lambda: clock[0])
    stack.pbx.clear_request_log()
    assert reads.shown(first, None).account == first  # type: ignore[union-attr]
    assert reads.shown(second, None).account == second  # type: ignore[union-attr]
    clock[0] += CHAT_READ_AHEAD_MAX_AGE_S + 0.1
    assert reads.shown(third, None).account == third  # type: ignore[union-attr]
    with pytest.raises(BridgeUnknownAccount):
        reads.shown(gone, None)
    reads.shown(first, None)  # used already: read again, never a state kept from before
    assert _state_reads(stack) == [
        [first, gone, second], [first],  # refused for the gone user: the first read alone
        [second, third],  # the next users read together
        [third],  # too old by now: read again
        [gone], [first],
    ]


def test_a_chat_status_read_ahead_reads_fewer_users_once_its_states_grew_old_before_use(stack: Stack) -> None:
    """Batches sharing the PBX's rate write more slowly than one alone: a read whose states went stale
    before use was too big, so the next covers half as many users (then one more per read), and reads
    the stale ones again instead of skipping them as already read."""
    stack.add_tenant()
    accounts = [stack.seeds.account(i) for i in range(20)]
    clock = [0.0]
    reads = ChatReadAhead(stack.runtime.bridge(_tenant(stack)), accounts, users=8, clock=lambda: clock[0])
    stack.pbx.clear_request_log()
    reads.shown(accounts[0], None)  # accounts 0-7 read together
    reads.shown(accounts[1], None)
    clock[0] += CHAT_READ_AHEAD_MAX_AGE_S + 0.1
    reads.shown(accounts[2], None)  # stale: read again with half as many, 2-5
    reads.shown(accounts[3], None)
    reads.shown(accounts[4], None)
    reads.shown(accounts[5], None)
    reads.shown(accounts[6], None)  # the first read's 6 stale too: half of 5, 6 and 7
    assert _state_reads(stack) == [accounts[0:8], accounts[2:6], accounts[6:8]]


def test_a_bridge_that_rejects_our_secret_stops_only_the_users_who_need_the_chat_status(stack: Stack) -> None:
    """The shared chat read fails for every user of the batch; a user whose change is DND only (here a
    rule with no text) still gets it, as with the read per user, and one who needs the text is refused."""
    stack.add_tenant()
    tenant = _tenant(stack)
    policy, rest, bridge = policy_for(tenant), stack.runtime.starface(tenant), stack.runtime.bridge(tenant)
    stack.pbx.break_bridge(secret="changed-in-the-module-only")
    dnd_only = StarfacePlan(category=Category.IN_A_MEETING, dnd=DndAction.SET, chat_text=None,
                            telephony_active=None, sequence_number=None, observed_at=None)
    with_text = replace(dnd_only, chat_text="In a Teams meeting")
    first, second = stack.seeds.account(0), stack.seeds.account(1)
    reads = ChatReadAhead(bridge, [first, second], users=2)
    read_and_write(dnd_only, first, StarfaceApplied(), None, policy, rest, bridge, None, None, reads)
    assert stack.user(0)["dnd"] is True
    with pytest.raises(BridgeSecretRejected):
        read_and_write(with_text, second, StarfaceApplied(), None, policy, rest, bridge, None, None, reads)
    assert stack.user(1)["dnd"] is False  # nothing written before the chat status was known
