"""Outages and isolation: STARFACE failing converges by retry, Graph failing by the next cycle, nothing
secret in task messages, and one tenant's events never reach another tenant's users."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from embedded.stack import BROKER_URL, Stack, StackFactory
from models import Target
from models.base import utcnow
from models.db import transaction
from models.store import claim, ensure_row, load_applied_states
from presence import StarfaceApplied, StarfacePlan
from simulators.paired import BRIDGE_SECRET, STARFACE_ADMIN_PASSWORD, paired_seeds
from sync.apply import (
    UPDATE_CLAIM_LEASE,
    WRITE_MARGIN,
    LeaseRunningOut,
    RetryableStarfaceError,
    WriteFence,
    pbx_gate,
    read_and_write,
    run_apply,
    run_apply_batch,
)
from sync.events import run_event
from sync.maintenance import run_drift_repair
from sync.poll import run_poll
from sync.ports import CollectingQueue
from tenants.policy import policy_for
from tenants.service import load_tenant
from workers import queues
from workers.task_queue import CELERY_QUEUE, unpack_batch


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(4), web=False)


def test_it_retries_a_starface_outage_and_writes_once_when_it_is_back(stack: Stack) -> None:
    stack.add_tenant()
    stack.teams(0, "sign_in")
    stack.teams(0, "call_start")
    path = f"/rest/users/{stack.seeds.account(0)}/phoneconfig"
    stack.pbx.inject_fault(path, status=503, count=3, method="GET")
    stack.start_worker("w1")
    stack.until(lambda: stack.user(0)["dnd"], timeout=30, what="DND once STARFACE answers again")
    reads = [r for r in stack.pbx.request_log() if r["path"] == path and r["method"] == "GET"]
    assert len(reads) >= 4  # three answered 503 (the fault), then the retry went through
    assert stack.phoneconfig_puts(0) == 1
    stack.settle()
    assert len(stack.changes("starface")) == 1


def test_it_converges_after_graph_answers_503(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=1.0)
    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    stack.ms.add_fault("getPresencesByUserId", 503, count=2)
    stack.start_worker("w1")
    stack.until(lambda: stack.user(1)["dnd"], timeout=30, what="DND after Graph recovered")


def _messages(queue: str) -> list[dict]:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        raws = client.lrange(queue, 0, -1)
    finally:
        client.close()
    messages = []
    for raw in raws:
        envelope = json.loads(raw)
        messages.append({"headers": envelope["headers"], "body": base64.b64decode(envelope["body"]).decode(),
                         "raw": raw.decode()})
    return messages


def test_it_sends_tasks_with_ids_and_expiry_but_no_secret(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.add_tenant()
    stack.teams(2, "sign_in")
    stack.teams(2, "call_start")
    caplog.set_level(logging.DEBUG)
    stack.make_due()
    stack.tick()  # no worker runs: the poll task stays on the queue for inspection
    (poll,) = _messages(queues.QUEUE_POLL)
    assert poll["headers"]["task"] == queues.TASK_POLL_BATCH
    assert poll["headers"]["expires"] is not None  # a stale poll is dropped, never applied
    applies = CollectingQueue()
    tenant_id, batch = unpack_batch(json.loads(poll["body"])[1]["packed"])
    assert tenant_id == stack.tenant_id
    run_poll(stack.runtime, tenant_id, batch, applies)
    assert len(applies.applies) == 1
    CELERY_QUEUE.apply(*applies.applies[0])
    (apply,) = _messages(queues.QUEUE_APPLY)
    assert apply["headers"]["expires"] is not None
    secrets = (stack.seeds.app["secret"], STARFACE_ADMIN_PASSWORD, BRIDGE_SECRET,
               stack.runtime.settings.encryption_keys)
    for text in (poll["raw"], apply["raw"], caplog.text):
        assert all(secret not in text for secret in secrets)


@pytest.fixture
def small_stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(3), web=False)


def test_it_never_lets_one_tenants_event_reach_another_tenants_user(small_stack: Stack) -> None:
    stack = small_stack
    first = stack.add_tenant("first", selection={"login_ids": ["1101", "1102"]})  # only user 0 (1100)
    second = stack.add_tenant("second", selection={"login_ids": ["1100"]})  # users 1 and 2
    event = {"event_id": "e-1", "type": "telephony", "account": stack.seeds.account(1), "login": "1101",
             "occurred_at": utcnow().isoformat(), "origin": "user", "telephony_state": "ACTIVE",
             "dnd": None, "chat_presence": None, "chat_presence_message": None}
    assert run_event(stack.runtime, first, event) == {"ignored": "user not synced"}
    assert stack.ms.count("setPresence") == 0
    assert run_event(stack.runtime, second, event) == {"action": "set", "session": "DoNotDisturb/Presenting"}
    assert stack.ms.count("setPresence") == 1


def _chat_writes(stack: Stack, index: int) -> int:
    account = f"<int>{stack.seeds.account(index)}</int>"
    bodies = [r.get("body") or "" for r in stack.pbx.request_log() if r["path"] == "/xml-rpc"]
    return sum(1 for body in bodies if "setChatStatus" in body and account in body)


def test_a_claim_taken_over_after_a_lost_record_writes_nothing_twice(stack: Stack) -> None:
    """A worker made the STARFACE writes, then lost their record (the database crashed) and died. After
    its claim lease the next writer sees what is shown and writes nothing again (chaos suite: a PostgreSQL
    restart during a burst wrote DND and chat text twice)."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0)
    stack.teams(1, "sign_in")
    batch = stack.linked_batch()
    link_id = batch[1][0]
    run_poll(stack.runtime, tenant_id, batch, CollectingQueue())  # the first look is no change
    stack.teams(1, "status_set", availability="Busy", activity="Busy")  # a chat text, and no symbol
    decided = CollectingQueue()
    run_poll(stack.runtime, tenant_id, batch, decided)
    plan, version = next((p, v) for _, link, p, v in decided.applies if link == link_id)
    with transaction(stack.runtime.sessions) as session:
        tenant = load_tenant(session, tenant_id)
        assert tenant is not None
        ensure_row(session, tenant_id=tenant_id, user_link_id=link_id, target=Target.STARFACE.value)
        assert claim(session, user_link_id=link_id, target=Target.STARFACE.value,
                     expected_version=version or 1, claim_id="dead-worker", claim_fields=plan,
                     expires_at=utcnow() - timedelta(seconds=1))
    rest, bridge = stack.runtime.starface(tenant), stack.runtime.bridge(tenant)
    read_and_write(StarfacePlan.from_json(plan), stack.seeds.account(1), StarfaceApplied(), None,
                   policy_for(tenant), rest, bridge, None)  # the dead worker's writes, never recorded
    assert stack.user(1)["chatPresenceMessage"] == "Busy (MS Teams)"
    puts, chats = stack.phoneconfig_puts(1), _chat_writes(stack, 1)
    stack.runtime.coordination.clear_pending(tenant_id, link_id)  # its "update queued" mark has lapsed too
    decided = CollectingQueue()
    run_poll(stack.runtime, tenant_id, batch, decided)  # the claim has expired: decided again
    plan, version = next((p, v) for _, link, p, v in decided.applies if link == link_id)
    result = run_apply(stack.runtime, tenant_id, link_id, plan, version)
    assert result["writes"] == {}, result
    assert stack.changes("starface")[-1].after == {"chat_text": "Busy (MS Teams)"}  # recorded once now
    assert (stack.phoneconfig_puts(1), _chat_writes(stack, 1)) == (puts, chats)
    with transaction(stack.runtime.sessions) as session:
        state = load_applied_states(session, [link_id])[(link_id, Target.STARFACE.value)]
        assert state.claim_id is None and state.fields["chat_text"] == "Busy (MS Teams)"



def _decide(stack: Stack, tenant_id: int, batch: Any, link_id: int) -> tuple[dict[str, Any], int | None]:
    """One poll, run here rather than by the tick: the plan and expected version decided for the user."""
    stack.runtime.coordination.clear_pending(tenant_id, link_id)  # no update task clears it here
    decided = CollectingQueue()
    run_poll(stack.runtime, tenant_id, batch, decided)
    return next((p, v) for _, link, p, v in decided.applies if link == link_id)


def _call_started_and_decided(stack: Stack, options: dict[str, Any] | None = None
                              ) -> tuple[int, Any, int, dict[str, Any], int | None]:
    """A call starts in Teams and a poll decides the update for user 1: tenant, batch, user, plan and the
    version the update must expect."""
    tenant_id = stack.add_tenant(poll_interval_s=3600.0, **({"options": options} if options else {}))
    stack.teams(1, "sign_in")
    batch = stack.linked_batch()
    link_id = batch[1][0]
    run_poll(stack.runtime, tenant_id, batch, CollectingQueue())
    stack.teams(1, "call_start")
    plan, version = _decide(stack, tenant_id, batch, link_id)
    return tenant_id, batch, link_id, plan, version


def _dnd_put_then_bridge_503(stack: Stack) -> tuple[int, Any, int, int | None]:
    """A call starts in Teams; its update switches the DND on, then the bridge answers 503 to the
    telephony status: the update fails after its first write. Returns the tenant, batch, user and the
    version the retry must expect."""
    tenant_id, batch, link_id, plan, version = _call_started_and_decided(
        stack, {"set_chat_text": False, "set_telephony": True, "respect_manual_dnd": True})
    stack.pbx.inject_fault("/xml-rpc", status=503, count=1)
    with pytest.raises(RetryableStarfaceError) as failed:
        run_apply(stack.runtime, tenant_id, link_id, plan, version)
    assert stack.user(1)["dnd"] is True and stack.phoneconfig_puts(1) == 1
    return tenant_id, batch, link_id, failed.value.next_version


def test_a_write_made_before_the_pbx_failed_is_recorded_once_and_stays_ours(stack: Stack) -> None:
    """The retry must find the DND as this very plan's (recorded, owned, not written again) rather than as
    one the user switched on by hand (chaos suite: "duplicate" writes without an audit row, and a DND that
    "respect a DND set by hand" would never clear)."""
    tenant_id, batch, link_id, next_version = _dnd_put_then_bridge_503(stack)
    plan, _ = _decide(stack, tenant_id, batch, link_id)

    retried = run_apply(stack.runtime, tenant_id, link_id, plan, next_version)
    assert retried["writes"] == {"telephony": "ACTIVE"}, retried
    assert stack.phoneconfig_puts(1) == 1  # not written twice
    assert stack.changes("starface")[-1].after == {"dnd": True, "telephony": "ACTIVE"}  # and recorded
    with transaction(stack.runtime.sessions) as session:
        state = load_applied_states(session, [link_id])[(link_id, Target.STARFACE.value)]
    assert state.fields["dnd_ours"] is True and state.fields["dnd_manual"] is False

    stack.teams(1, "call_end")  # ours, so the end of the call clears it
    run_apply(stack.runtime, tenant_id, link_id, *_decide(stack, tenant_id, batch, link_id))
    assert stack.user(1)["dnd"] is False


def test_a_write_of_a_failed_update_is_recorded_when_the_next_change_undoes_it(stack: Stack) -> None:
    """The call ended before the failed update was retried (or after its retries ran out): the applied
    state still says "available", yet the poll hands the change on because the failed update's intent is
    unsettled; the update clears the DND and the audit trail shows both writes - the interrupted update's,
    then its own. Before, nobody cleared that DND."""
    tenant_id, batch, link_id, _ = _dnd_put_then_bridge_503(stack)
    stack.teams(1, "call_end")
    plan, version = _decide(stack, tenant_id, batch, link_id)

    run_apply(stack.runtime, tenant_id, link_id, plan, version)
    assert stack.user(1)["dnd"] is False and stack.phoneconfig_puts(1) == 2
    assert [(c.cause, c.after) for c in stack.changes("starface")[-2:]] == [
        ("recovered: written by an interrupted update", {"dnd": True}),
        ("teams:Available", {"dnd": False}),  # the telephony status was never set: nothing to undo
    ]


def test_drift_repair_leaves_an_unsettled_write_to_the_next_update(stack: Stack) -> None:
    """Drift repair must not learn the failed update's DND as the user's own (it would then never be
    cleared with "respect a DND set by hand"): it leaves the user alone while the intent is unsettled."""
    tenant_id, batch, link_id, _ = _dnd_put_then_bridge_503(stack)

    assert run_drift_repair(stack.runtime, tenant_id, CollectingQueue())["repaired"] == 0
    with transaction(stack.runtime.sessions) as session:
        state = load_applied_states(session, [link_id])[(link_id, Target.STARFACE.value)]
    assert state.fields.get("dnd_manual") is not True and state.claim_fields is not None

    stack.teams(1, "call_end")
    run_apply(stack.runtime, tenant_id, link_id, *_decide(stack, tenant_id, batch, link_id))
    assert stack.user(1)["dnd"] is False


def test_an_update_starts_no_write_once_its_claim_is_close_to_expiry(stack: Stack) -> None:
    """A claim lasts UPDATE_CLAIM_LEASE (30 s, so a killed worker's users wait no longer); its holder may
    still be alive, only slow (a PBX that answers late, a worker paused). Its fence stops it writing once
    less than WRITE_MARGIN is left, so its writes can never overlap those of whoever takes the claim over."""
    tenant_id, _, _, plan, _ = _call_started_and_decided(stack)
    with transaction(stack.runtime.sessions) as session:
        tenant = load_tenant(session, tenant_id)
        assert tenant is not None
    clock = [0.0]
    fence = WriteFence(UPDATE_CLAIM_LEASE, clock=lambda: clock[0])
    fence.check()  # just claimed: writes may start
    clock[0] = (UPDATE_CLAIM_LEASE - WRITE_MARGIN).total_seconds() + 0.1
    gate = pbx_gate(stack.runtime, tenant)
    with pytest.raises(LeaseRunningOut):
        read_and_write(StarfacePlan.from_json(plan), stack.seeds.account(1), StarfaceApplied(), None,
                       policy_for(tenant), stack.runtime.starface(tenant), stack.runtime.bridge(tenant), gate,
                       fence)
    assert stack.phoneconfig_puts(1) == 0 and stack.user(1)["dnd"] is False  # read, but not written
    assert _chat_writes(stack, 1) == 0


def test_a_batch_whose_claim_runs_out_writes_nothing_and_hands_its_users_on(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched update under the same fence: a user reached too late is released (its claim free at
    once, not after the lease) and retried on its own, which then writes once."""
    tenant_id, _, link_id, plan, version = _call_started_and_decided(stack)
    monkeypatch.setattr("sync.apply.UPDATE_CLAIM_LEASE", WRITE_MARGIN)  # no time left to write at all
    handed_on = CollectingQueue()
    result = run_apply_batch(stack.runtime, tenant_id, [(link_id, plan, version)], handed_on)
    assert (result["failed"], result["retrying"]) == (1, [link_id]), result
    assert stack.phoneconfig_puts(1) == 0
    with transaction(stack.runtime.sessions) as session:
        state = load_applied_states(session, [link_id])[(link_id, Target.STARFACE.value)]
    assert state.claim_id is None
    monkeypatch.undo()
    (_, retried_link, retried_plan, retried_version), = handed_on.applies
    assert retried_link == link_id and retried_version == state.version
    run_apply(stack.runtime, tenant_id, link_id, retried_plan, retried_version)
    assert stack.user(1)["dnd"] is True and stack.phoneconfig_puts(1) == 1
