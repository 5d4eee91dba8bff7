"""Throttling, dead workers and the cost of a poll: the tenant is blocked for Retry-After, no change is
lost when a worker dies mid-batch, and a batch costs one Graph request and a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models import UserLink
from models.base import utcnow
from models.db import transaction
from models.store import claim, ensure_row, release_claim
from simulators.paired import paired_seeds
from sync.poll import run_poll
from sync.ports import CollectingQueue
from sync.settled import SettledUsers
from tests.support.query_counter import count_queries


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(6), web=False, fractional_retry_after=True)


def _presence_polls(stack: Stack) -> list[dict]:
    return [e for e in stack.ms.requests("getPresencesByUserId")["entries"] if not e["batch"]]


def test_it_blocks_the_tenant_until_a_fractional_retry_after_has_passed(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=1.0)
    stack.start_worker("w1")
    stack.until(lambda: _presence_polls(stack), what="a first poll")
    stack.ms.add_fault("getPresencesByUserId", 429, retry_after=2.5)
    throttled = stack.until(lambda: [e for e in _presence_polls(stack) if e["status"] == 429],
                            what="the injected 429")[0]
    after = stack.until(
        lambda: [e for e in _presence_polls(stack) if e["seq"] > throttled["seq"]], timeout=20,
        what="a poll after the block",
    )
    assert after[0]["time"] - throttled["time"] >= 2.5  # nothing was sent to Graph before Retry-After
    assert after[0]["status"] == 200


def test_it_loses_no_change_when_a_worker_dies_in_the_middle_of_a_batch(stack: Stack) -> None:
    stack.add_tenant()
    stack.teams(4, "sign_in")
    stack.teams(4, "call_start")
    stack.ms.add_fault("getPresencesByUserId", None, delay_s=6.0)  # the poll hangs inside Graph ...
    doomed = stack.start_worker("doomed", concurrency=1)
    stack.until(lambda: _presence_polls(stack), what="the slow poll to reach Graph")
    stack.kill_worker(doomed)  # ... and its worker is killed there, the batch unfinished
    assert not stack.user(4)["dnd"], "the doomed worker finished its batch before it was killed"
    stack.start_worker("survivor")
    stack.until(lambda: stack.user(4)["dnd"], timeout=30, what="the next cycle to converge")
    stack.settle()
    assert len(stack.changes("starface")) == 1


@pytest.fixture
def big_stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(650), web=False)


def test_it_polls_a_batch_with_one_graph_request_and_constant_queries(big_stack: Stack) -> None:
    stack = big_stack
    tenant_id = stack.add_tenant()
    links = stack.linked_batch()
    assert len(links) == 650
    queries: dict[int, int] = {}
    for size in (10, 650):
        batch = links[:size]
        run_poll(stack.runtime, tenant_id, batch, CollectingQueue())  # warm: token, clients
        before = stack.ms.count("getPresencesByUserId")
        with count_queries(stack.runtime.engine) as counted:
            summary = run_poll(stack.runtime, tenant_id, batch, CollectingQueue())
        assert summary["presences"] == size
        assert stack.ms.count("getPresencesByUserId") - before == 1
        queries[size] = counted.count
    assert queries[10] == queries[650]
    assert queries[650] <= 6


@pytest.fixture
def stack_1500(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(1500), web=False)


def test_it_polls_1500_users_with_three_graph_requests_per_cycle(stack_1500: Stack) -> None:
    stack = stack_1500
    stack.add_tenant(poll_interval_s=3600.0)
    stack.start_worker("w1", concurrency=2)
    before = stack.ms.count("getPresencesByUserId")
    stack.make_due()
    stack.tick()
    wait_until(lambda: stack.ms.count("getPresencesByUserId") - before >= 3, what="three batches")
    stack.tick()  # not due again for an hour: no more requests
    assert stack.ms.count("getPresencesByUserId") - before == 3


def test_it_reuses_the_microsoft_token_across_polls(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=1.0)
    tokens = stack.ms.count("token")
    stack.start_worker("w1", concurrency=1)
    stack.until(lambda: len(_presence_polls(stack)) >= 4, what="four polls")
    # One token for the worker process: every claim touches the tenant row, none rebuilds the client.
    assert stack.ms.count("token") - tokens == 1


def test_it_does_not_queue_an_update_again_while_the_first_waits(stack: Stack) -> None:
    tenant_id = stack.add_tenant()
    for index in range(3):
        stack.teams(index, "sign_in")
        stack.teams(index, "call_start")
    batch = stack.linked_batch()
    queued = CollectingQueue()
    first = run_poll(stack.runtime, tenant_id, batch, queued)
    again = run_poll(stack.runtime, tenant_id, batch, queued)  # this process leaves them (sync/settled.py)
    assert stack.runtime.settled is not None
    stack.runtime.settled = SettledUsers(max_users=stack.runtime.settled.max_users)  # another worker process
    other = run_poll(stack.runtime, tenant_id, batch, queued)  # decides them, finds the "update queued" marks
    assert (first["updates"], again["updates"], again["already_queued"]) == (3, 0, 0)
    assert (other["updates"], other["already_queued"]) == (0, 3)
    assert len(queued.applies) == 3


def test_it_does_not_decide_for_a_user_whose_teams_session_is_changing(stack: Stack) -> None:
    """The poll may read our new session from Graph before its row records it: that user waits a cycle."""
    tenant_id = stack.add_tenant()
    stack.teams(0, "sign_in")
    stack.teams(0, "call_start")  # Busy/InACall, as our session looks in mode busy_in_a_call
    with transaction(stack.runtime.sessions) as session:
        link = session.scalars(select(UserLink).where(UserLink.login_id == stack.seeds.login(0))).one()
        ensure_row(session, tenant_id=tenant_id, user_link_id=link.id, target="teams")
        assert claim(session, user_link_id=link.id, target="teams", expected_version=1, claim_id="event-task",
                     claim_fields={"action": "set"}, expires_at=utcnow() + timedelta(seconds=60))
    batch = [(link.id, link.entra_object_id or "")]
    assert run_poll(stack.runtime, tenant_id, batch, CollectingQueue())["updates"] == 0
    with transaction(stack.runtime.sessions) as session:
        release_claim(session, user_link_id=link.id, target="teams", claim_id="event-task")
    assert run_poll(stack.runtime, tenant_id, batch, CollectingQueue())["updates"] == 1
