"""Maintenance against both simulators: directory sync reports, drift repair, keep-alive, health, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models import AppliedState, Target, Tenant, TenantHealth, UserLink
from models.base import utcnow
from models.db import transaction
from presence import StarfaceApplied
from simulators.paired import paired_seeds
from sync import maintenance
from sync.directory import sync_directory
from sync.events import run_event
from sync.maintenance import run_drift_repair, run_keep_alive, run_secret_expiry
from sync.poll import run_poll
from sync.ports import CollectingQueue
from tenants.service import update_tenant
from tests.support.coordination import run_while_pbx_full, watching_pbx_slots
from workers.task_queue import CELERY_QUEUE


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(4))


def _links(stack: Stack) -> dict[str, UserLink]:
    with transaction(stack.runtime.sessions) as session:
        return {link.login_id: link for link in session.scalars(select(UserLink))}


def _health(stack: Stack) -> TenantHealth:
    with transaction(stack.runtime.sessions) as session:
        health = session.get(TenantHealth, stack.tenant_id)
        assert health is not None
        return health


@pytest.fixture
def directory_stack(stacks: StackFactory) -> Iterator[Stack]:
    seeds = paired_seeds(4)
    twins = [{"id": f"99999999-0000-0000-0000-00000000000{n}", "mail": "twin@contoso.example",
              "userPrincipalName": f"twin.{n}@contoso.example", "displayName": f"Twin {n}"} for n in (1, 2)]
    seeds.tenant["users"].extend(twins)
    seeds.starface["users"][3]["email"] = "Twin@Contoso.example"  # user 2 (login 1102)
    yield from stacks.build(seeds, web=False)


def test_it_links_users_by_email_and_reports_the_rest_with_reasons(directory_stack: Stack) -> None:
    stack = directory_stack
    stack.add_tenant(selection={"login_ids": ["1103", "1999"]})  # all users except 1103 (1999 does not exist)
    links = _links(stack)
    assert [links[stack.seeds.login(i)].state for i in range(2)] == ["linked"] * 2
    assert links[stack.seeds.login(0)].entra_object_id == stack.seeds.entra_id(0)
    assert links["1102"].state == "duplicate_email"
    assert links["1102"].reason == "twin@contoso.example matches several Microsoft 365 users (Twin 1, Twin 2)"
    assert links["1102"].entra_object_id is None
    assert links["1103"].state == "excluded"
    assert (links["0001"].state, links["0001"].reason) == (
        "unmatched", "no Microsoft 365 user has pbx-admin@example.test as mail, UPN or proxy address")


def test_directory_sync_reads_the_pbx_through_its_gate(directory_stack: Stack) -> None:
    stack = directory_stack
    stack.add_tenant()
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
    assert tenant is not None
    with watching_pbx_slots(stack) as seen:
        sync_directory(stack.runtime, tenant, CELERY_QUEUE)
    assert len(seen.granted) == 1  # GET /rest/users, in a slot of the PBX like every other request


@pytest.fixture
def stack_without_webhooks(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(4), web=False)


def _our_call_text_overwritten_by_the_app(stack: Stack) -> None:
    """User 1's Teams call wrote and recorded our chat text, the worker stopped, then the STARFACE app
    overwrote the text (the bridge's event of it is lost: the stack has no web app)."""
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    # Recorded, not just written: the update task also reads the chat status before writing (issue 11).
    stack.until(lambda: stack.user(1)["chatPresenceMessage"] == "On a call in MS Teams"
                and stack.changes("starface"), what="call text written and recorded")
    stack.stop_workers()
    stack.pbx.app_overwrites_chat(stack.seeds.login(1), "AVAILABLE", "Back at 3")


def test_it_reapplies_an_overwritten_chat_text_in_drift_repair_when_the_event_was_lost(
    stack_without_webhooks: Stack,
) -> None:
    stack = stack_without_webhooks
    _our_call_text_overwritten_by_the_app(stack)
    assert stack.user(1)["chatPresenceMessage"] == "Back at 3"
    assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["repaired"] == 1
    assert stack.user(1)["chatPresenceMessage"] == "On a call in MS Teams"
    assert stack.changes("starface")[-1].cause == "drift-repair"
    # nothing left to repair
    assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["repaired"] == 0


def test_drift_repair_reads_back_and_repairs_only_through_the_pbx_gate(stack_without_webhooks: Stack) -> None:
    """While other workers hold every slot of the PBX, drift repair sends it nothing; once they give them
    back, the read-back takes a slot and the repair's write another (no PBX sees more than its limit)."""
    stack = stack_without_webhooks
    _our_call_text_overwritten_by_the_app(stack)  # from here on only this drift repair talks to the PBX
    counts, seen = run_while_pbx_full(stack, lambda: run_drift_repair(stack.runtime, stack.tenant_id,
                                                                       CELERY_QUEUE), "drift repair")
    assert counts["repaired"] == 1
    assert stack.user(1)["chatPresenceMessage"] == "On a call in MS Teams"
    assert len(seen.granted) == 2  # getStates of the read-back, then setChatStatus


def test_drift_repair_sets_the_session_of_a_call_whose_start_event_was_lost(
    stack_without_webhooks: Stack,
) -> None:
    """User 2 never had a change (no applied rows) and the PBX's call events never arrive: drift repair
    reads the call back and holds the Teams session, then ends it when the read-back shows the call over."""
    stack = stack_without_webhooks
    stack.add_tenant()
    login = stack.seeds.login(2)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    assert not stack.presence(2).get("sessions", {}).get("apps")
    assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["sessions"] == 1
    assert stack.presence(2)["sessions"]["apps"]  # our DoNotDisturb/Presenting session
    assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["sessions"] == 0  # held: as it is
    stack.pbx.hang_up(login)
    assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["sessions"] == 1
    assert not stack.presence(2).get("sessions", {}).get("apps")


def test_it_refreshes_a_held_teams_session_before_it_lapses(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)
    stack.start_worker("w1")
    stack.teams(2, "sign_in")
    stack.pbx.ring(stack.seeds.login(2))
    stack.pbx.answer(stack.seeds.login(2))
    stack.until(lambda: stack.presence(2)["availability"] == "DoNotDisturb", what="Teams DND")
    sets = stack.ms.count("setPresence")
    assert run_keep_alive(stack.runtime, stack.tenant_id)["refreshed"] == 0  # just set: not due yet
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert run_keep_alive(stack.runtime, stack.tenant_id, now=later)["refreshed"] == 1
    assert stack.ms.count("setPresence") == sets + 1


def test_it_records_a_bad_client_secret_in_tenant_health_with_its_fix(stack: Stack) -> None:
    stack.add_tenant()
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        update_tenant(session, stack.runtime.box, tenant, {"microsoft.client_secret": "a-wrong-secret"})
    link = _links(stack)[stack.seeds.login(0)]
    summary = run_poll(stack.runtime, stack.tenant_id, [(link.id, link.entra_object_id or "")],
                       CollectingQueue())
    assert summary == {"failed": "auth"}
    health = _health(stack)
    assert health.last_error_code == "AADSTS7000215"
    assert health.last_error_message and "Fix:" in health.last_error_message
    assert "a-wrong-secret" not in health.last_error_message
    assert health.polls_failed == 1


def test_it_warns_thirty_days_before_the_client_secret_expires(stack: Stack) -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    stack.add_tenant(sync=False, microsoft={"secret_expires_at": now + timedelta(days=20)})
    assert run_secret_expiry(stack.runtime, now=now) == {"warned": 1}
    warning = _health(stack).secret_expiry_warning
    assert warning is not None and "in 20 days" in warning and "teamsconnect tenant set contoso" in warning
    assert run_secret_expiry(stack.runtime, now=now - timedelta(days=30)) == {"warned": 0}
    assert _health(stack).secret_expiry_warning is None


def test_it_reads_the_secrets_expiry_from_entra_where_the_customer_permits_it(stack: Stack) -> None:
    """With Application.Read.All granted, Entra's date of our secret beats the one typed by hand; without
    it (the test above), the typed date counts."""
    now = datetime.now(UTC)
    stack.add_tenant(sync=False, microsoft={"secret_expires_at": now + timedelta(days=400)})
    tenant_id, app = stack.seeds.tenant["id"], stack.seeds.app["clientId"]
    stack.ms.rotate_secret(tenant_id, app, stack.seeds.app["secret"],
                           expires=(now + timedelta(days=12)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    stack.ms.set_roles(tenant_id, app, ["Presence.ReadWrite.All", "User.Read.All", "Application.Read.All"])
    assert run_secret_expiry(stack.runtime, now=now) == {"warned": 1}
    warning = _health(stack).secret_expiry_warning
    assert warning is not None and "in 11 days" in warning
    with transaction(stack.runtime.sessions) as session:
        stored = session.get_one(Tenant, stack.tenant_id).ms_secret_expires_at
    assert stored is not None and abs((stored - (now + timedelta(days=12))).total_seconds()) < 2


def test_it_releases_our_dnd_when_a_user_stops_being_synced(stack: Stack) -> None:
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(3, "sign_in")
    stack.teams(3, "call_start")
    stack.until(lambda: stack.user(3)["dnd"], what="DND for the Teams call")
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        tenant.login_ids = [stack.seeds.login(3)]  # the admin excludes the user mid-call
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
    assert sync_directory(stack.runtime, tenant, CELERY_QUEUE)["released"] == 1
    stack.until(lambda: not stack.user(3)["dnd"] and stack.user(3)["chatPresenceMessage"] == "",
                what="our DND and our chat text released")  # two PBX requests: wait for both
    stack.settle()
    assert stack.changes("starface")[-1].cause == "released: user no longer synced"


def test_it_reapplies_an_overwritten_chat_text_as_soon_as_the_event_arrives(stack: Stack) -> None:
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    # Recorded, not just written: the update task also reads the chat status before writing (issue 11).
    stack.until(lambda: stack.user(1)["chatPresenceMessage"] == "On a call in MS Teams"
                and stack.changes("starface"), what="call text written and recorded")
    stack.pbx.app_overwrites_chat(stack.seeds.login(1), "AVAILABLE", "Back at 3")
    # the first write shows on the PBX a moment before its audit row: an empty trail is "not yet"
    repaired = ["starface:chat text overwritten"]
    stack.until(lambda: [c.cause for c in stack.changes("starface")][-1:] == repaired,
                what="the event-driven repair")
    assert stack.user(1)["chatPresenceMessage"] == "On a call in MS Teams"
    stack.teams(1, "call_end")
    stack.until(lambda: stack.user(1)["chatPresenceMessage"] == ""
                and stack.changes("starface")[-1].cause == "teams:Available",
                what="text cleared after the call, and recorded")
    stack.settle()  # the clear is on the PBX; let its audit row be written before counting
    changes = len(stack.changes())
    # After the call the text is not asked for any more: a later overwrite is the user's to keep.
    event = {"event_id": "e-2", "type": "presence", "account": stack.seeds.account(1), "login": "1101",
             "occurred_at": datetime.now(UTC).isoformat(), "origin": "user", "telephony_state": None,
             "dnd": None, "chat_presence": "AVAILABLE", "chat_presence_message": "Back at 3"}
    assert run_event(stack.runtime, stack.tenant_id, event) == {"repaired": False}
    assert len(stack.changes()) == changes


def test_it_releases_everything_of_ours_when_a_tenant_is_disabled(stack: Stack) -> None:
    stack.add_tenant()
    stack.start_worker("w1")
    for index in (0, 2):
        stack.teams(index, "sign_in")
    stack.teams(0, "call_start")
    stack.pbx.toggle_dnd_by_hand(stack.seeds.login(1), True)  # the user's own DND: never ours to clear
    stack.pbx.ring(stack.seeds.login(2))
    stack.pbx.answer(stack.seeds.login(2))
    stack.until(lambda: stack.user(0)["dnd"] and stack.presence(2)["availability"] == "DoNotDisturb",
                what="our DND and our Teams session")
    stack.settle()  # the DND recorded as ours, and its update no longer queued: what a release needs
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        tenant.enabled = False
    released = run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)
    assert released == {"released": 1, "sessions_cleared": 1}
    # DND and chat text are two requests to the PBX: wait for both, not just the first.
    wait_until(lambda: not stack.user(0)["dnd"] and stack.user(0)["chatPresenceMessage"] == "",
               what="our DND and our chat text released")
    assert stack.presence(2)["availability"] == "Available"
    assert stack.user(1)["dnd"] is True
    stack.tick()  # a disabled tenant is not polled any more
    stack.settle()
    assert [c.cause for c in stack.changes()][-2:] == ["released: tenant disabled"] * 2


def test_drift_repair_without_a_bridge_reads_back_for_its_time_budget_only(
    stack_without_webhooks: Stack, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a bridge the read-back is one GET per user at the PBX's rate: a round stops reading when its
    budget is spent (the others are read in a later round), so a large tenant's task ends in time."""
    stack = stack_without_webhooks
    stack.add_tenant(bridge=False)
    linked = [link for link in _links(stack).values() if link.state == "linked"]
    assert len(linked) > 1
    with transaction(stack.runtime.sessions) as session:
        session.execute(insert(AppliedState), [
            {"user_link_id": link.id, "tenant_id": stack.tenant_id, "target": Target.STARFACE.value,
             "fields": StarfaceApplied().to_json(), "owned": [], "version": 1, "applied_at": utcnow()}
            for link in linked])

    def dnd_reads() -> int:
        return sum(1 for entry in stack.pbx.request_log()
                   if entry["method"] == "GET" and entry["path"].endswith("/phoneconfig"))

    stack.pbx.clear_request_log()
    monkeypatch.setattr(maintenance, "READ_BACK_BUDGET_S", 0.0)
    assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["checked"] == len(linked)
    assert dnd_reads() == 1  # the first user is always read, then the budget is spent
    monkeypatch.undo()
    stack.pbx.clear_request_log()
    run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)
    assert dnd_reads() == len(linked)
