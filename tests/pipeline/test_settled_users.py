"""The poll's memo of settled users (sync/settled.py, issue 14): a user whose presence and applied rows
are unchanged since a "nothing to write" is not decided again (no row documents read), and anything the
answer depends on - the presence, either applied row, the tenant's rules - brings the decision back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from config import Settings
from embedded.stack import Stack, StackFactory
from models import Target, Tenant, UserLink
from models.base import utcnow
from models.crypto import SecretBox, generate_key
from models.db import make_engine, make_session_factory, transaction
from models.store import compare_and_set
from presence import Category, StarfaceApplied, TenantPolicy
from presence.linking import LinkState
from simulators.paired import paired_seeds
from sync.coordination import LocalCoordination
from sync.poll import run_poll
from sync.ports import Batch, CollectingQueue
from sync.runtime import Runtime
from sync.settled import QUEUED_RECHECK_S, SettledUsers
from tenants.service import update_tenant
from tests.support.query_counter import count_queries

USERS = 3


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(USERS), web=False)


def _batch(stack: Stack, tenant_id: int) -> Batch:
    with transaction(stack.runtime.sessions) as session:
        linked = (UserLink.tenant_id == tenant_id) & (UserLink.state == LinkState.LINKED.value)
        rows = session.execute(select(UserLink.id, UserLink.entra_object_id).where(linked)
                               .order_by(UserLink.id)).all()
    assert len(rows) == USERS
    return [(link_id, entra_id or "") for link_id, entra_id in rows]


def _poll(stack: Stack, tenant_id: int, batch: Batch) -> tuple[dict[str, object], list[int], int]:
    """One poll: its summary, the users it queued updates for, and its SQL statements."""
    queue = CollectingQueue()
    with count_queries(stack.runtime.engine) as counted:
        summary = run_poll(stack.runtime, tenant_id, batch, queue)
    return summary, [link_id for _, items in queue.apply_batches for link_id, _, _ in items], counted.count


def test_a_settled_user_is_decided_again_when_its_presence_rows_or_rules_change(stack: Stack) -> None:
    tenant_id = stack.add_tenant("settled", bridge=False)
    batch = _batch(stack, tenant_id)
    for index in range(USERS):
        stack.teams(index, "sign_in")
    assert _poll(stack, tenant_id, batch)[1] == []  # the first look at everyone: Available, nothing to write
    assert stack.runtime.settled is not None and stack.runtime.settled.users == USERS

    summary, queued, statements = _poll(stack, tenant_id, batch)
    assert (summary["presences"], queued) == (USERS, [])
    # the tenant's fingerprint (its configuration unchanged: it is kept), the rows' versions, one health
    # stamp: no row's document is read, nobody decided
    assert statements == 3

    # The presence: user 1 starts a Teams call.
    stack.teams(1, "call_start")
    assert _poll(stack, tenant_id, batch)[1] == [batch[1][0]]

    # An applied row: user 0's STARFACE row now says we switched DND on for an earlier Busy; Available
    # asks for it to be cleared. Same presence as when the answer was "nothing": only the row changed.
    with transaction(stack.runtime.sessions) as session:
        earlier = StarfaceApplied(dnd_ours=True, category=Category.BUSY,
                                  observed_at=utcnow() - timedelta(minutes=1))
        assert compare_and_set(session, tenant_id=tenant_id, user_link_id=batch[0][0],
                               target=Target.STARFACE.value, expected_version=None, fields=earlier.to_json(),
                               owned=["dnd"], observed_at=earlier.observed_at)
    assert _poll(stack, tenant_id, batch)[1] == [batch[0][0]]

    # The rules: Available now asks for DND, so user 2 (unchanged, settled) gets an update too.
    with transaction(stack.runtime.sessions) as session:
        update_tenant(session, stack.runtime.box, session.get_one(Tenant, tenant_id),
                      {"rules.Available.dnd": "set"})
    summary, queued, _ = _poll(stack, tenant_id, batch)
    assert queued == [batch[2][0]]
    assert summary["already_queued"] == 2  # users 0 and 1: their updates still wait in the queue


def test_a_user_whose_update_is_queued_is_left_until_something_changes_or_the_recheck_is_due(
    stack: Stack,
) -> None:
    """In a burst a queued user's presence and rows stay as they were until the update is applied; the poll
    leaves the user (no documents, no decision, no "update queued" check) for QUEUED_RECHECK_S. A lost
    update is queued again after that at the latest, and a new presence is decided at once."""
    tenant_id = stack.add_tenant("queued", bridge=False)
    batch = _batch(stack, tenant_id)
    memo = stack.runtime.settled
    assert memo is not None
    now = [1000.0]
    memo.clock = lambda: now[0]
    for index in range(USERS):
        stack.teams(index, "sign_in")
    assert _poll(stack, tenant_id, batch)[1] == []  # everyone settled: Available
    stack.teams(1, "call_start")
    assert _poll(stack, tenant_id, batch)[1] == [batch[1][0]]

    summary, queued, statements = _poll(stack, tenant_id, batch)
    assert (queued, summary["already_queued"]) == ([], 0)  # left: not even found "already queued"
    assert statements == 3  # and no row document read for it

    # The update is lost without changing a row (a dropped task clears its users' marks).
    stack.runtime.coordination.clear_pending(tenant_id, batch[1][0])
    now[0] += QUEUED_RECHECK_S - 0.5
    assert _poll(stack, tenant_id, batch)[1] == []
    now[0] += 0.5
    assert _poll(stack, tenant_id, batch)[1] == [batch[1][0]]  # due again: decided and queued again

    # A new presence is decided at once (found already queued: its mark is there).
    stack.teams(1, "presenting_start")
    summary, queued, _ = _poll(stack, tenant_id, batch)
    assert (queued, summary["already_queued"]) == ([], 1)


def test_the_memo_keeps_within_its_bound_and_forgets_a_tenant_whose_policy_changed() -> None:
    memo = SettledUsers(max_users=2)
    tenant = memo.of_tenant(1, TenantPolicy())
    key = ("entra-id", "A0000000001", "Available", "Available", False, None, None, None, None)
    newer = ("entra-id", "A0000000002", "Available", "Available", False, 7, 2, None, None)
    for link_id in (10, 11, 12):
        tenant.remember(link_id, key)
    assert memo.users == 2 and tenant.holds(10, key) and not tenant.holds(12, key)  # full: 12 not kept
    tenant.remember(10, newer)  # a newer answer replaces the user's older one, in its place
    assert memo.users == 2 and tenant.holds(10, newer) and not tenant.holds(10, key)
    assert memo.of_tenant(1, TenantPolicy()).holds(11, key)  # an equal policy keeps the answers
    assert not memo.of_tenant(1, TenantPolicy(set_dnd=False)).holds(11, key)
    assert memo.users == 0


@pytest.mark.parametrize(("configured", "memo_size"), [(0, None), (250, 250)])
def test_the_setting_sizes_the_memo_and_zero_switches_it_off(configured: int, memo_size: int | None) -> None:
    engine = make_engine("sqlite://")
    runtime = Runtime(settings=Settings(_env_file=None, settled_users_max=configured), engine=engine,
                      sessions=make_session_factory(engine), box=SecretBox([generate_key()]),
                      coordination=LocalCoordination())
    assert (None if runtime.settled is None else runtime.settled.max_users) == memo_size
    runtime.close()
