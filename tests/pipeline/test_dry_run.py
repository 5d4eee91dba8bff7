"""The dry run (what the first cycle would write) reads under the sync's limits: the tenant's Graph budget
and throttle block, and the PBX's gate (sync/dry_run.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models import Tenant
from models.db import transaction
from simulators.paired import paired_seeds
from sync.coordination import LocalCoordination
from sync.dry_run import PlannedWrite, dry_run
from tests.support.coordination import (
    RedisDown,
    pbx_slots_held,
    run_while_pbx_full,
    using_coordination,
    watching_pbx_slots,
)


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    for built in stacks.build(paired_seeds(3), web=False):
        built.add_tenant()
        yield built


def _dry_run(stack: Stack) -> tuple[list[PlannedWrite], str | None]:
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        return dry_run(stack.runtime, session, tenant)


def test_it_shows_what_the_first_cycle_would_write(stack: Stack) -> None:
    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    planned, error = _dry_run(stack)
    assert error is None
    by_login = {write.login_id: write for write in planned}
    called = by_login[stack.seeds.login(1)]
    assert called.dnd_write == "set" and called.dnd_now is False and called.category == "InACall"
    assert stack.user(1)["dnd"] is False  # nothing written


def test_it_sends_graph_nothing_while_the_tenant_is_throttled_and_blocks_it_on_a_429(stack: Stack) -> None:
    coordination = stack.runtime.coordination
    coordination.block(stack.tenant_id, 30.0)
    before = stack.ms.count("getPresencesByUserId")
    planned, error = _dry_run(stack)
    assert planned == [] and error is not None and "Retry-After" in error and "30 s" in error
    assert stack.ms.count("getPresencesByUserId") == before  # Retry-After holds for the whole tenant

    coordination.block(stack.tenant_id, 0.001)
    wait_until(lambda: coordination.blocked_for(stack.tenant_id) == 0.0, timeout=5, what="the block to end")
    stack.ms.add_fault("getPresencesByUserId", 429, retry_after=20)
    planned, error = _dry_run(stack)
    assert planned == [] and error is not None and "429" in error
    assert 0 < coordination.blocked_for(stack.tenant_id) <= 20  # the tenant's polls wait too


def test_it_takes_its_graph_request_from_the_tenants_budget(stack: Stack) -> None:
    frozen = LocalCoordination(clock=lambda: 0.0)  # a budget that does not refill while the test runs
    while frozen.take(stack.tenant_id) == 0.0:  # the tenant's polls used the budget up
        pass
    before = stack.ms.count("getPresencesByUserId")
    with using_coordination(stack, frozen):
        planned, error = _dry_run(stack)
    assert planned == [] and error is not None and "budget" in error
    assert stack.ms.count("getPresencesByUserId") == before


def test_it_reads_the_pbx_only_through_its_gate(stack: Stack) -> None:
    """While other workers hold every slot of the PBX, the dry run sends it nothing; once they give them
    back, each DND read takes a slot (no PBX sees more requests than its limit)."""
    (planned, error), seen = run_while_pbx_full(stack, lambda: _dry_run(stack), "the dry run")
    assert error is None and len(planned) == 3
    assert len(seen.granted) == 3  # one DND read per user, each with its slot


def test_it_stops_reading_the_pbx_at_its_deadline_and_says_whose_dnd_is_unknown(stack: Stack) -> None:
    """A burst holds every slot of the PBX for longer than the dry run may wait: it waits its PBX time,
    sends the PBX nothing, and shows every user, those whose rule would set DND as not read."""
    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    requests_before = len(stack.pbx.request_log())
    with watching_pbx_slots(stack) as seen, pbx_slots_held(stack, seen.inner), \
            transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        planned, note = dry_run(stack.runtime, session, tenant, pbx_s=0.3)
    assert seen.refused.is_set() and seen.granted == []
    assert len(stack.pbx.request_log()) == requests_before
    assert len(planned) == 3
    assert {write.login_id: write.dnd_write for write in planned}[stack.seeds.login(1)] == "unknown"
    assert note is not None and "busy" in note and "1 of 3" in note


def test_it_says_so_and_sends_nothing_while_the_shared_store_is_down(stack: Stack) -> None:
    """Without Redis the tenant's budget and Retry-After cannot be kept: no Graph request, no PBX read."""
    graph_before, pbx_before = stack.ms.count("getPresencesByUserId"), len(stack.pbx.request_log())
    with using_coordination(stack, RedisDown()):
        planned, error = _dry_run(stack)
    assert planned == [] and error is not None and "Redis" in error
    assert stack.ms.count("getPresencesByUserId") == graph_before
    assert len(stack.pbx.request_log()) == pbx_before
