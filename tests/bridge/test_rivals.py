"""Rival syncs found from evidence, end to end against both simulators over HTTP: another integration
flipping DND and chat text on the PBX, another application's Teams session, two tenants on one PBX and one
Entra user - each shown in health (findings), `teamsconnect tenant show` and the admin read API, with
hysteresis. Nothing of ours is mocked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.graph import GraphClient
from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models import Tenant
from models.db import transaction
from models.findings import Finding, Hysteresis, finding_list, record_evidence
from simulators.paired import paired_seeds
from sync.directory import sync_directory
from sync.maintenance import run_drift_repair
from sync.rivals import RIVAL_PBX, RIVAL_TEAMS, SHARED_ENTRA_USER, SHARED_PBX, check_shared
from tenants.overview import tenant_detail
from tests.support.factories import tenant_row
from workers.task_queue import CELERY_QUEUE

CALL_TEXT = "On a call in MS Teams"


def _findings(stack: Stack, tenant_id: int | None = None) -> dict[str, dict[str, Any]]:
    with transaction(stack.runtime.sessions) as session:
        return {f["kind"]: f for f in finding_list(session, tenant_id or stack.tenant_id)}


def _evidence_rows(stack: Stack, kind: str) -> list[Finding]:
    with transaction(stack.runtime.sessions) as session:
        return list(session.scalars(select(Finding).where(Finding.kind == kind)))


def _in_a_teams_call(stack: Stack, index: int) -> None:
    stack.teams(index, "sign_in")
    stack.teams(index, "call_start")
    stack.until(lambda: stack.user(index)["dnd"] and stack.user(index)["chatPresenceMessage"] == CALL_TEXT,
                what="DND and the call text from Teams")
    stack.settle()


# --- hysteresis ----------------------------------------------------------------------------------------
def test_a_finding_needs_n_pieces_in_a_window_and_clears_only_after_a_quiet_period(
    pg_sessions: sessionmaker[Session], box: Any
) -> None:
    rule = Hysteresis(threshold=3, window=timedelta(minutes=10), quiet=timedelta(minutes=30))
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with transaction(pg_sessions) as session:
        tenant_id = tenant_row(session, box).id

    def evidence(minutes: float) -> list[dict[str, Any]]:
        now = t0 + timedelta(minutes=minutes)
        with transaction(pg_sessions) as session:
            record_evidence(session, tenant_id, RIVAL_PBX, f"flip at {minutes}", "fix it", rule, now=now)
        return shown(minutes)

    def shown(minutes: float) -> list[dict[str, Any]]:
        with transaction(pg_sessions) as session:
            return finding_list(session, tenant_id, t0 + timedelta(minutes=minutes))

    # spread out beyond the window: never shown
    assert evidence(0) == [] and evidence(11) == [] and evidence(22) == []
    # three within ten minutes: shown, with the episode's first/last seen and count
    assert evidence(40) == [] and evidence(45) == []
    [finding] = evidence(48)
    assert (finding["count"], finding["evidence"], finding["fix"]) == (3, "flip at 48", "fix it")
    assert finding["first_seen"] == t0 + timedelta(minutes=40)
    # one more piece now and then keeps it shown; it clears only after 30 quiet minutes
    assert evidence(70) and shown(99) and not shown(100)
    # a new episode needs three pieces again
    assert evidence(120) == [] and evidence(121) == []
    assert evidence(122)[0]["count"] == 3


# --- the PBX ---------------------------------------------------------------------------------------------
@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(3))


def test_another_integration_flipping_dnd_and_chat_text_becomes_a_finding_with_its_fix(
    stack: Stack, cli: Callable[..., Result]
) -> None:
    stack.add_tenant(poll_interval_s=1.0)
    stack.start_worker("w1")
    _in_a_teams_call(stack, 0)
    login = stack.seeds.login(0)
    assert _evidence_rows(stack, RIVAL_PBX) == []  # our own writes are no evidence
    stack.pbx.rival_flip(login, dnd=False)  # STARFACE's own sync thinks the user is free
    stack.pbx.rival_flip(login, message="Abwesend (Presence Sync)")
    stack.settle()
    assert _findings(stack) == {}  # two pieces: not yet
    stack.pbx.rival_flip(login, message="Verfuegbar (Presence Sync)")
    finding = wait_until(lambda: _findings(stack).get(RIVAL_PBX), timeout=20, what="the rival finding")
    assert finding["count"] == 3 and f"user {login}" in finding["evidence"]
    assert "another integration" in finding["evidence"] and "Microsoft Presence" in finding["fix"]

    shown = cli("tenant", "show", str(stack.tenant_id))
    assert f"finding {RIVAL_PBX}: user {login}" in shown.stdout and "Erweiterte Einstellungen" in shown.stdout
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        detail = tenant_detail(session, tenant, "https://tc.example", datetime.now(UTC))
    assert [(f["kind"], f["count"]) for f in detail["findings"]] == [(RIVAL_PBX, 3)]


def test_a_periodically_flipping_rival_is_found_and_our_verify_run_is_not(
    stack: Stack, cli: Callable[..., Result]
) -> None:
    stack.add_tenant(poll_interval_s=1.0)
    stack.start_worker("w1")
    _in_a_teams_call(stack, 1)
    login = stack.seeds.login(1)
    assert cli("bridge", "verify", str(stack.tenant_id), "--test-user", login).exit_code == 0
    stack.settle()
    assert _evidence_rows(stack, RIVAL_PBX) == []  # the check's round trips are no rival
    stack.pbx.rival_periodic(login, every_s=0.2, count=10, message="In a meeting (other sync)")
    wait_until(lambda: _findings(stack).get(RIVAL_PBX), timeout=20, what="the rival finding")


@pytest.fixture
def stack_without_webhooks(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(3), web=False)  # no webhooks: the events are lost


def test_drift_repair_writing_back_again_and_again_is_evidence_too(stack_without_webhooks: Stack) -> None:
    stack = stack_without_webhooks
    stack.add_tenant(poll_interval_s=3600.0)
    stack.start_worker("w1")
    stack.make_due()
    stack.teams(2, "sign_in")
    stack.teams(2, "call_start")
    stack.until(lambda: stack.user(2)["dnd"], what="DND from Teams")
    stack.settle()
    for n in range(3):
        assert RIVAL_PBX not in _findings(stack)
        stack.pbx.rival_flip(stack.seeds.login(2), message=f"Busy elsewhere {n}")
        assert run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)["repaired"] == 1
        assert stack.user(2)["chatPresenceMessage"] == CALL_TEXT
    finding = _findings(stack)[RIVAL_PBX]
    assert finding["count"] == 3
    expected = f"drift repair found chat text 'Busy elsewhere 2' instead of '{CALL_TEXT}'"
    assert expected in finding["evidence"]


# --- Teams -------------------------------------------------------------------------------------------------
@pytest.fixture
def rival_app_stack(stacks: StackFactory) -> Iterator[Stack]:
    seeds = paired_seeds(3)
    rival = dict(seeds.app, clientId="77777777-7777-4777-8777-777777777777", secret="rival-app-secret")
    seeds.tenant["apps"].append(rival)
    yield from stacks.build(seeds)


def test_another_applications_teams_session_becomes_a_finding(rival_app_stack: Stack) -> None:
    stack = rival_app_stack
    stack.add_tenant(poll_interval_s=3600.0, options={"teams_presence_mode": "busy_in_a_call"})
    stack.start_worker("w1")
    stack.teams(0, "sign_in")
    stack.pbx.ring(stack.seeds.login(0))
    stack.pbx.answer(stack.seeds.login(0))
    stack.until(lambda: stack.presence(0)["activity"] == "InACall", what="our Busy/InACall session")
    stack.settle()
    run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)
    assert _evidence_rows(stack, RIVAL_TEAMS) == []  # Teams shows our own session: no evidence
    rival = stack.seeds.tenant["apps"][1]
    graph = GraphClient(stack.seeds.tenant["id"], rival["clientId"], rival["secret"],
                        login_base_url=stack.microsoft.base_url, graph_base_url=stack.microsoft.base_url,
                        verify=stack.microsoft.ca_path)
    try:  # the other application (e.g. STARFACE's own sync) sets its session for the same PBX call
        graph.set_presence(stack.seeds.entra_id(0), "DoNotDisturb", "Presenting", timedelta(minutes=30))
    finally:
        graph.close()
    assert stack.presence(0)["sessions"]["apps"].keys() == {stack.seeds.app["clientId"], rival["clientId"]}
    for expected in (False, False, True):
        run_drift_repair(stack.runtime, stack.tenant_id, CELERY_QUEUE)
        assert (RIVAL_TEAMS in _findings(stack)) is expected
    finding = _findings(stack)[RIVAL_TEAMS]
    assert "DoNotDisturb/Presenting while TeamsConnect holds Busy/InACall" in finding["evidence"]
    assert "Presence.ReadWrite.All" in finding["fix"]


# --- configuration ------------------------------------------------------------------------------------------
def test_two_tenants_on_one_pbx_and_one_entra_user_are_shown_on_both_until_one_goes(stack: Stack) -> None:
    first = stack.add_tenant("contoso")
    second = stack.add_tenant("contoso-second")  # the directory sync of the second finds the first
    for tenant_id, other in ((first, "contoso-second"), (second, "contoso")):
        found = _findings(stack, tenant_id)
        assert set(found) == {SHARED_PBX, SHARED_ENTRA_USER}
        assert f"'{other}'" in found[SHARED_PBX]["evidence"]
        assert "3 Microsoft 365 user(s)" in found[SHARED_ENTRA_USER]["evidence"]
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, second)
        assert tenant is not None
        tenant.enabled = False
    check_shared(stack.runtime, first)
    assert _findings(stack, first) == {} and _findings(stack, second) == {}
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, second)
        assert tenant is not None
        tenant.enabled = True
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, first)
        assert tenant is not None
    sync_directory(stack.runtime, tenant, CELERY_QUEUE)
    assert set(_findings(stack, second)) == {SHARED_PBX, SHARED_ENTRA_USER}
