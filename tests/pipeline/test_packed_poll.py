"""Several small tenants polled in one task: each decided as if alone, together at the SQL cost of one
poll, and one tenant's failure never stops the others (issue 14: small tenants cheaply)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select

from embedded.stack import BROKER_URL, Stack, StackFactory, queued_tasks
from embedded.waiting import wait_until
from models import Tenant, TenantHealth, UserLink
from models.base import utcnow
from models.db import transaction
from presence.linking import LinkState
from simulators.paired import paired_seeds
from sync.poll import run_poll, run_poll_many
from sync.ports import Batch, CollectingQueue
from tenants.service import update_tenant
from tests.support.query_counter import count_queries
from workers import queues
from workers.app import celery_app
from workers.task_queue import CELERY_QUEUE, pack_batch, unpack_batch


@pytest.fixture
def six_user_stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(6), web=False)


def _tenant_of_users(stack: Stack, name: str, users: list[int]) -> tuple[int, Batch]:
    """A tenant that selects exactly these users (all others listed as excluded), and its poll batch."""
    others = [stack.seeds.login(i) for i in range(6) if i not in users]
    tenant_id = stack.add_tenant(name, bridge=False, selection={"login_ids": others})
    with transaction(stack.runtime.sessions) as session:
        linked = (UserLink.tenant_id == tenant_id) & (UserLink.state == LinkState.LINKED.value)
        rows = session.execute(select(UserLink.id, UserLink.entra_object_id).where(linked)
                               .order_by(UserLink.id)).all()
    assert len(rows) == len(users)
    return tenant_id, [(link_id, entra_id or "") for link_id, entra_id in rows]


def _polls_ok(stack: Stack) -> dict[int, int]:
    with transaction(stack.runtime.sessions) as session:
        return {tenant_id: polls_ok for tenant_id, polls_ok in
                session.execute(select(TenantHealth.tenant_id, TenantHealth.polls_ok))}


def test_it_decides_each_packed_tenant_alone_with_the_sql_of_one_poll(six_user_stack: Stack) -> None:
    stack = six_user_stack
    polls = [_tenant_of_users(stack, name, users) for name, users in
             (("first", [0, 1]), ("second", [2, 3]), ("third", [4, 5]))]
    for index in range(6):
        stack.teams(index, "sign_in")
    run_poll_many(stack.runtime, polls, CollectingQueue())  # the first look at everyone: no change
    stack.teams(0, "call_start")
    stack.teams(3, "call_start")
    before = _polls_ok(stack)
    two = CollectingQueue()
    with count_queries(stack.runtime.engine) as two_tenants:
        run_poll_many(stack.runtime, polls[:2], two)
    # Each tenant's own user, decided from its own applied state and rules, nobody else's.
    assert sorted((tenant_id, link_id) for tenant_id, link_id, _, _ in two.applies) == [
        (polls[0][0], polls[0][1][0][0]), (polls[1][0], polls[1][1][1][0])]
    assert [len(items) for _, items in two.apply_batches] == [1, 1]  # one update task per tenant
    three = CollectingQueue()
    with count_queries(stack.runtime.engine) as three_tenants:
        summary = run_poll_many(stack.runtime, polls, three)
    # The two updates are still queued: not decided twice (left alone while nothing changes,
    # sync/settled.py); the third tenant has nothing to change.
    assert three.applies == []
    assert summary["results"][str(polls[0][0])]["already_queued"] == 0
    # the tenants' configuration fingerprints (unchanged since the first poll: the tenants are kept,
    # sync/tenant_policies.py), the applied rows' versions of all their users, the documents of the rows
    # of the users to decide (the two who started a call; the next poll leaves them), one health stamp
    assert two_tenants.count == 4, two_tenants.statements
    assert three_tenants.count == 3, three_tenants.statements
    after = _polls_ok(stack)
    assert {tenant_id: after[tenant_id] - before[tenant_id] for tenant_id, _ in polls} == {
        polls[0][0]: 2, polls[1][0]: 2, polls[2][0]: 1}
    with count_queries(stack.runtime.engine) as settled:
        assert run_poll_many(stack.runtime, polls[2:], CollectingQueue())["results"][str(polls[2][0])] == {
            "users": 2, "presences": 2, "updates": 0, "already_queued": 0}
    # Nobody of the third tenant changed since its last poll: no applied row's document is read.
    assert settled.count == 3, settled.statements


def test_one_packed_tenants_failure_leaves_the_others_polled(six_user_stack: Stack) -> None:
    stack = six_user_stack
    healthy, throttled, bad_login, disabled, no_app = (
        _tenant_of_users(stack, name, users) for name, users in
        (("healthy", [0, 1]), ("throttled", [2]), ("bad-login", [3, 4]), ("disabled", [5]), ("no-app", [1])))
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, bad_login[0])
        assert tenant is not None
        update_tenant(session, stack.runtime.box, tenant, {"microsoft.client_secret": "not-the-secret"})
        tenant = session.get(Tenant, no_app[0])
        assert tenant is not None  # moved to the provider's app, which this deployment has not configured
        update_tenant(session, stack.runtime.box, tenant,
                      {"microsoft": {"app": "provider", "client_id": None, "client_secret": None}})
        session.execute(Tenant.__table__.update().where(Tenant.id == disabled[0]).values(enabled=False))
    stack.runtime.coordination.block(throttled[0], 30.0)
    stack.teams(0, "sign_in")
    stack.teams(0, "call_start")
    before = _polls_ok(stack)
    decided = CollectingQueue()
    summary = run_poll_many(stack.runtime, [bad_login, no_app, throttled, disabled, healthy], decided)
    results = summary["results"]
    assert results[str(no_app[0])] == {"failed": "ProviderAppMissing"}
    assert results[str(bad_login[0])] == {"failed": "auth"}
    assert results[str(throttled[0])]["skipped"] == "throttled"
    assert results[str(disabled[0])] == {"skipped": "tenant gone or disabled"}
    assert results[str(healthy[0])]["updates"] == 1
    assert [link_id for _, link_id, _, _ in decided.applies] == [healthy[1][0][0]]
    after = _polls_ok(stack)
    assert after[healthy[0]] == before[healthy[0]] + 1
    assert after[bad_login[0]] == before[bad_login[0]]
    with transaction(stack.runtime.sessions) as session:
        health = session.get(TenantHealth, bad_login[0])
        assert health is not None and health.last_error_code is not None
        assert health.last_error_code.startswith("AADSTS")  # the admin is told which sign-in failed
        health = session.get(TenantHealth, no_app[0])
        assert health is not None and health.last_error_code == "ProviderAppMissing"


def test_a_packed_polls_graph_requests_wait_for_microsoft_together(six_user_stack: Stack) -> None:
    """Each tenant's request goes to its own Microsoft tenant: with Graph answering after 0.5 s, the
    requests of four tenants are all sent before the first answer came back."""
    stack = six_user_stack
    polls = [_tenant_of_users(stack, name, users) for name, users in
             (("a", [0]), ("b", [1, 2]), ("c", [3]), ("d", [4, 5]))]
    threads = set(threading.enumerate())
    run_poll_many(stack.runtime, polls, CollectingQueue())  # warm: tokens and connections
    slow_s = 0.5
    stack.ms.add_fault("getPresencesByUserId", None, count=len(polls), delay_s=slow_s)
    since = stack.ms.requests()["total"]
    summary = run_poll_many(stack.runtime, polls, CollectingQueue())
    assert all("users" in result for result in summary["results"].values()), summary
    entries = stack.ms.requests("getPresencesByUserId", since)["entries"]
    sent = sorted(entry["time"] for entry in entries)
    assert len(sent) == len(polls)
    assert sent[-1] - sent[0] < slow_s  # one after another, the last would be sent >= 1.5 s after the first
    # Sent from this thread (no reading threads, whose GIL hand-overs cost more CPU than the reads), over
    # connections the process keeps for the next packed poll rather than open anew.
    stack.ms.add_fault("getPresencesByUserId", None, count=len(polls), delay_s=slow_s)
    since = stack.ms.requests()["total"]
    run_poll_many(stack.runtime, polls, CollectingQueue())
    again = stack.ms.requests("getPresencesByUserId", since)["entries"]
    assert {entry["connection"] for entry in again} == {entry["connection"] for entry in entries}
    assert len({entry["connection"] for entry in entries}) == len(polls)
    assert set(threading.enumerate()) - threads == set()


def test_tenants_share_graph_connections_but_never_a_login_cookie(six_user_stack: Stack) -> None:
    """One keep-alive connection serves every tenant's polls in a worker process (not one per tenant), and
    the cookies Entra's login sets are kept by no one, so none can travel with another customer's calls."""
    stack = six_user_stack
    first, second = (_tenant_of_users(stack, name, users) for name, users in (("first", [0, 1]),
                                                                               ("second", [2, 3])))
    since = stack.ms.requests()["total"]
    for tenant_id, batch in (first, second, first, second):
        run_poll(stack.runtime, tenant_id, batch, CollectingQueue())
    entries = stack.ms.requests(since=since)["entries"]
    reads = [entry for entry in entries if entry["route"] == "getPresencesByUserId"]
    assert len(reads) == 4
    assert len({entry["connection"] for entry in reads}) == 1, reads
    everything = stack.ms.requests()["entries"]  # the logins of the directory syncs included
    assert any(entry["route"] == "token" for entry in everything)
    assert [entry for entry in everything if entry["cookie"]] == []


def test_a_packed_poll_carries_each_tenant_as_two_strings_and_refuses_what_it_cannot_carry() -> None:
    batch = [(17, "0b5e0f0e-1111-4c3d-9e8f-000000000001"), (18, "0b5e0f0e-1111-4c3d-9e8f-000000000002")]
    packed = pack_batch(7, batch)
    assert packed == [7, "17,18", "0b5e0f0e-1111-4c3d-9e8f-000000000001,0b5e0f0e-1111-4c3d-9e8f-000000000002"]
    assert unpack_batch(json.loads(json.dumps(packed))) == (7, batch)  # as the worker receives it
    assert unpack_batch(pack_batch(8, [])) == (8, [])
    assert unpack_batch(pack_batch(9, [(19, "")])) == (9, [(19, "")])
    with pytest.raises(ValueError, match="comma"):
        pack_batch(7, [(17, "a,b")])
    with pytest.raises(ValueError, match="2 link ids but 1 Entra ids"):
        unpack_batch([7, "17,18", "0b5e0f0e-1111-4c3d-9e8f-000000000001"])


@pytest.mark.parametrize("task", [queues.TASK_POLL_MANY, queues.TASK_POLL_BATCH])
def test_a_worker_polls_a_batch_in_either_format_a_tick_sent(six_user_stack: Stack, task: str) -> None:
    """A worker upgraded while the queue still holds tasks of the format before (a pair per user) polls
    those as well as the new ones: several small tenants' task, and one batch's (a tenant too large to be
    packed with others)."""
    stack = six_user_stack
    new_format, old_format = (_tenant_of_users(stack, name, users) for name, users in
                              (("new", [0, 1]), ("old", [2, 3])))
    old_pairs = [list(pair) for pair in old_format[1]]
    for index in (0, 2):  # one user of each tenant in a call: each poll that reads its users queues an update
        stack.teams(index, "sign_in")
        stack.teams(index, "call_start")
    before = _polls_ok(stack)
    stack.start_worker("formats", concurrency=1, queues="poll")
    if task == queues.TASK_POLL_MANY:
        CELERY_QUEUE.poll_many([new_format], utcnow(), 30.0)
        old_kwargs: dict[str, object] = {"polls": [[old_format[0], old_pairs]]}
    else:
        CELERY_QUEUE.poll(*new_format, utcnow(), 30.0)
        old_kwargs = {"tenant_id": old_format[0], "batch": old_pairs}
    celery_app.send_task(task, queue=queues.QUEUE_POLL,
                         kwargs={**old_kwargs, "cycle_at": utcnow().isoformat()})
    wait_until(lambda: all(_polls_ok(stack)[tenant_id] == before[tenant_id] + 1  # no tick polls them
                           for tenant_id, _ in (new_format, old_format)), timeout=30,
               what="both tenants polled by the worker")
    broker = redis.Redis.from_url(BROKER_URL)
    try:  # the worker takes no apply task: both updates wait in the queue, so both batches had their users
        wait_until(lambda: queued_tasks(broker, queues.QUEUE_APPLY) == 2, timeout=10,
                   what="an update queued by each tenant's poll")
    finally:
        broker.close()
