"""`teamsconnect bridge verify` against the STARFACE simulator over HTTP: a conforming bridge passes every
clause and keeps the test user as it was; a deliberately broken one fails the right clause with a fix."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import Result

from connectors.starface import StarfaceBridgeClient
from embedded.stack import BROKER_URL, Stack
from models import Tenant
from models.db import transaction
from models.secrets import read_secrets
from simulators.paired import BRIDGE_SECRET, STARFACE_ADMIN_LOGIN, STARFACE_ADMIN_PASSWORD
from sync.bridge_probe import wait_test_event
from sync.bridge_verify import run_bridge_verify
from tests.bridge.conftest import assert_no_secret
from tests.support.coordination import run_while_pbx_full

CLAUSES = ["ping and versions", "getStates (all users)", "getStates (a list)", "getStates (unknown account)",
           "setChatStatus round trip", "setTelephonyStatus round trip", "test event via webhook", "clock"]


def _clauses(result: Result) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(result.stdout)["clauses"]}


def _verify(cli: Callable[..., Result], stack: Stack, *extra: str) -> Result:
    return cli("bridge", "verify", str(stack.tenant_id), "--event-timeout", "3", *extra)


def test_a_conforming_bridge_passes_every_clause_and_the_test_user_is_restored(
    stack: Stack, cli: Callable[..., Result]
) -> None:
    stack.add_tenant()
    login = stack.seeds.login(1)
    stack.pbx.app_overwrites_chat(login, "AVAILABLE", "Zurueck um 3")
    before = stack.user(1)
    result = _verify(cli, stack, "--test-user", login, "--json")
    clauses = _clauses(result)
    assert list(clauses) == CLAUSES
    assert {c["status"] for c in clauses.values()} == {"PASS"}, clauses
    assert result.exit_code == 0
    assert "contract v1.1" in clauses["ping and versions"]["detail"]
    assert "arrived and verified" in clauses["test event via webhook"]["detail"]
    assert stack.user(1) == before  # chat text, presence and telephony put back
    assert_no_secret(result.stdout, stack)
    text = _verify(cli, stack, "--test-user", login)
    assert "all clauses passed" in text.stdout and text.exit_code == 0


def test_without_a_test_user_the_round_trips_are_skipped_not_failed(
    stack: Stack, cli: Callable[..., Result]
) -> None:
    stack.add_tenant()
    result = _verify(cli, stack, "--json")
    clauses = _clauses(result)
    assert clauses["setChatStatus round trip"]["status"] == "SKIP"
    assert "--test-user" in clauses["setChatStatus round trip"]["detail"]
    assert result.exit_code == 0


def test_an_unknown_test_user_is_named(stack: Stack, cli: Callable[..., Result]) -> None:
    stack.add_tenant()
    result = _verify(cli, stack, "--test-user", "4711", "--json")
    clauses = _clauses(result)
    assert clauses["test user"]["status"] == "FAIL" and "4711" in clauses["test user"]["detail"]
    assert result.exit_code == 1


# (simulator breakage, clause that must fail, words its fix must contain, clauses that must still pass)
BROKEN: dict[str, tuple[dict[str, Any], str, list[str], list[str]]] = {
    "wrong secret": ({"secret": "not-the-tenants-secret"}, "ping and versions",
                     ["'secret'", "Bridge-Geheimnis"], []),
    "wrong instance name": ({"instance": "TeamsBridge2"}, "ping and versions",
                            ["Instanzname", "TeamsConnectBridge"], []),
    "unsigned events": ({"signEvents": False}, "test event via webhook",
                        ["unsigned", "X-TeamsConnect-Signature"], ["ping and versions", "clock"]),
    "events signed with another secret": ({"signingSecret": "something-else"}, "test event via webhook",
                                          ["another secret"], ["ping and versions", "clock"]),
    "stale timestamps": ({"timestampOffsetS": -900}, "test event via webhook",
                         ["wrong time", "currentTimeMillis"], ["ping and versions", "clock"]),
    "clock skew": ({"clockSkewS": 120}, "clock", ["NTP"], ["ping and versions", "test event via webhook"]),
    "clock far off": ({"clockSkewS": -1000}, "clock", ["NTP"], ["ping and versions"]),
}


@pytest.mark.parametrize("mode", list(BROKEN))
def test_a_broken_bridge_fails_the_right_clause_with_its_fix(
    stack: Stack, cli: Callable[..., Result], mode: str
) -> None:
    breakage, failing, fix_words, passing = BROKEN[mode]
    stack.add_tenant()
    stack.pbx.break_bridge(**breakage)
    result = _verify(cli, stack, "--test-user", stack.seeds.login(0), "--json")
    clauses = _clauses(result)
    assert result.exit_code == 1
    assert clauses[failing]["status"] == "FAIL", clauses[failing]
    for word in fix_words:
        assert word in clauses[failing]["fix"], (word, clauses[failing])
    for name in passing:
        assert clauses[name]["status"] == "PASS", clauses[name]
    if failing == "ping and versions":
        assert {clauses[name]["status"] for name in CLAUSES[1:]} == {"SKIP"}
    assert_no_secret(result.stdout, stack)
    human = _verify(cli, stack)
    assert f"FAIL  {failing}" in human.stdout and "fix: " in human.stdout


def test_a_wrong_webhook_url_in_the_module_is_named_with_the_right_one(
    stack: Stack, cli: Callable[..., Result]
) -> None:
    stack.add_tenant()
    stack.pbx.set_webhook(f"{stack.web_url}/hooks/starface/999999")
    clauses = _clauses(_verify(cli, stack, "--json"))
    event = clauses["test event via webhook"]
    # An unknown tenant gets the same 401 as a bad signature (issue 13: ids must not map to tenants).
    assert event["status"] == "FAIL" and "HTTP 401" in event["detail"]
    assert f"{stack.web_url}/hooks/starface/{stack.tenant_id}" in event["fix"]
    assert "webhookUrl" in event["fix"]


def test_a_contract_1_0_bridge_passes_what_1_0_has(stack: Stack, cli: Callable[..., Result]) -> None:
    stack.add_tenant()
    stack.pbx.break_bridge(contractVersion="1")
    result = _verify(cli, stack, "--json")
    clauses = _clauses(result)
    assert clauses["ping and versions"]["status"] == "PASS"
    assert clauses["test event via webhook"]["status"] == "SKIP"
    assert "1.1" in clauses["test event via webhook"]["fix"]
    assert result.exit_code == 0


def test_an_unknown_tenant_is_an_input_error(stack: Stack, cli: Callable[..., Result]) -> None:
    result = cli("bridge", "verify", "nobody")
    assert result.exit_code == 2 and "no tenant named 'nobody'" in result.stderr



def test_a_test_event_is_noted_for_the_tenant_and_no_work_is_queued(stack: Stack) -> None:
    stack.add_tenant()
    broker = redis.Redis.from_url(BROKER_URL)
    try:
        queued = broker.llen("events")
        with StarfaceBridgeClient(stack.starface.base_url, STARFACE_ADMIN_LOGIN, STARFACE_ADMIN_PASSWORD,
                                  secret=BRIDGE_SECRET) as bridge:
            sent = bridge.send_test_event("nonce-1")
        assert (sent.sent, sent.status) == (True, 202) and '"test"' in sent.answer
        arrival = wait_test_event(stack.runtime.coordination, stack.tenant_id, "nonce-1", 5.0)
        assert arrival is not None and arrival["eventId"] in sent.answer
        assert wait_test_event(stack.runtime.coordination, stack.tenant_id, "other-nonce", 0.0) is None
        other_tenant = stack.tenant_id + 1  # noted per tenant: another tenant never sees it
        assert wait_test_event(stack.runtime.coordination, other_tenant, "nonce-1", 0.0) is None
        assert broker.llen("events") == queued
    finally:
        broker.close()


def test_each_bridge_request_of_the_check_waits_for_a_slot_of_the_pbx(stack: Stack) -> None:
    """The kit keeps the PBX's limits (sync/bridge_verify.py): while other workers hold every slot of the
    PBX it sends nothing, and once they give them back every clause passes, its requests in slots."""
    stack.add_tenant()
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        secrets = read_secrets(tenant, stack.runtime.box)
        session.expunge(tenant)
    logged_before = len(stack.pbx.request_log())
    clauses, seen = run_while_pbx_full(stack, lambda: run_bridge_verify(
        stack.runtime, tenant, secrets, webhook_url=f"{stack.web_url}/hooks/starface/{tenant.id}",
        test_user=stack.seeds.login(1), timeout=10.0, event_timeout=3.0), "the bridge check")
    assert [clause.name for clause in clauses] == CLAUSES
    assert {clause.status for clause in clauses} == {"PASS"}, clauses
    # ping, three getStates, the test user's reads, two writes and two restores each round trip, the
    # test event: each in a slot of its own
    assert len(seen.granted) >= 10, seen.granted
    sent = [entry["path"] for entry in stack.pbx.request_log()[logged_before:]]
    assert len(seen.granted) == len(sent), sent  # not one request without a slot
