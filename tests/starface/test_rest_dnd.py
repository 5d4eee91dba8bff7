"""REST: users, groups, DND through phoneconfig (read-modify-write), permissions and PBX failures."""

from __future__ import annotations

import httpx
import pytest

from connectors.starface import (
    StarfaceError,
    StarfaceForbidden,
    StarfaceNotFound,
    StarfaceRestClient,
    StarfaceUnavailable,
    StarfaceUser,
)
from simulators.starface import StarfaceSimControl, StarfaceSimulator, internal_login_secret
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, ALICE, BOB


def test_it_lists_users_with_emails_and_group_members(rest: StarfaceRestClient) -> None:
    users = rest.list_users()
    assert StarfaceUser(BOB, "1101", "user1@example.test", "User1", "Example") in users
    assert rest.group_member_ids(7) == [ALICE, BOB]
    assert [g.name for g in rest.list_groups()] == ["Support"]


def test_it_switches_dnd_on_and_off_for_another_user_keeping_other_fields(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    on = rest.set_dnd(BOB, True)
    assert (on.dnd_before, on.dnd_after, on.written) == (False, True, True)
    assert control.user_state("1101")["phoneConfig"] == {
        "callWaiting": False,
        "displayNumberId": 4711,
        "doNotDisturb": True,
        "primaryPhoneId": 815,
    }
    assert rest.get_dnd(BOB) is True

    off = rest.set_dnd(BOB, False)

    assert (off.dnd_before, off.dnd_after, off.written) == (True, False, True)
    assert control.user_state("1101")["phoneConfig"] == {
        "callWaiting": False,
        "displayNumberId": 4711,
        "doNotDisturb": False,
        "primaryPhoneId": 815,
    }


def test_it_skips_the_write_when_dnd_is_already_as_wanted(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    control.toggle_dnd_by_hand("1101", True)  # the user set DND by hand
    control.clear_request_log()

    result = rest.set_dnd(BOB, True)

    assert (result.dnd_before, result.written) == (True, False)
    assert [e["method"] for e in control.request_log() if "phoneconfig" in e["path"]] == ["GET"]


def test_it_answers_200_unexpected_error_to_a_phoneconfig_put_missing_a_field(
    sim: StarfaceSimulator, control: StarfaceSimControl
) -> None:
    # the spec documents 204, 200 "Unexpected error" and 500 for this PUT; nothing is applied
    with httpx.Client(base_url=sim.base_url + "/rest") as http:
        challenge = http.get("/login").json()
        secret = internal_login_secret(ADMIN_LOGIN, challenge["nonce"], ADMIN_PASSWORD)
        token = http.post("/login", json={**challenge, "secret": secret}).json()["token"]
        answer = http.put(
            f"/users/{BOB}/phoneconfig",
            headers={"authToken": token},
            json={"doNotDisturb": True, "callWaiting": False, "displayNumberId": 4711},
        )
    assert answer.status_code == 200
    assert answer.json()["message"] == "PhoneConfig.primaryPhoneId is required and must be int"
    assert control.user_state("1101")["dnd"] is False


def test_it_tells_a_non_admin_401_from_an_expired_token_and_logs_in_again_only_once(
    sim: StarfaceSimulator, control: StarfaceSimControl
) -> None:
    with StarfaceRestClient(sim.base_url, "1100", "pw-1100") as alice:
        assert alice.get_dnd(ALICE) is False  # her own phoneconfig is hers
        assert [u.id for u in alice.list_users()] == [ALICE]  # 200 with what she may see, not 403
        control.clear_request_log()
        with pytest.raises(StarfaceForbidden) as caught:
            alice.get_dnd(BOB)  # the PBX answers 401 "does not have Administrator permission"
        with pytest.raises(StarfaceForbidden):
            alice.check_access()
    assert [(e["method"], e["path"]) for e in control.request_log()][:6] == [
        ("GET", f"/rest/users/{BOB}/phoneconfig"),
        ("GET", "/rest/login"),
        ("POST", "/rest/login"),
        ("GET", f"/rest/users/{BOB}/phoneconfig"),
        ("GET", "/rest/users/me"),  # the fresh token is valid: so the 401 means "not allowed"
        ("GET", "/rest/users/me"),  # check_access starts: no third login for get_dnd
    ]
    assert caught.value.permanent
    assert "Administrator permission" in caught.value.message
    assert "'Berechtigungen'" in caught.value.message and "1100" in caught.value.message
    assert "pw-1100" not in caught.value.message


def test_it_reports_an_unknown_user(rest: StarfaceRestClient) -> None:
    with pytest.raises(StarfaceNotFound):
        rest.get_dnd(999)


def test_it_reports_a_5xx_as_transient_unavailable(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    control.inject_fault(f"/rest/users/{BOB}/phoneconfig", status=503)
    with pytest.raises(StarfaceUnavailable) as caught:
        rest.set_dnd(BOB, True)
    assert not caught.value.permanent
    assert "503" in caught.value.message
    assert rest.set_dnd(BOB, True).written  # the fault was used up: the next attempt goes through


def test_it_reports_a_timeout_as_unavailable(sim: StarfaceSimulator, control: StarfaceSimControl) -> None:
    control.inject_fault("/rest/users", delay_s=0.5)
    with (
        StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, timeout=0.1) as client,
        pytest.raises(StarfaceUnavailable) as caught,
    ):
        client.list_users()
    assert "did not answer" in caught.value.message


def test_it_reports_an_unreachable_pbx() -> None:
    with (
        StarfaceRestClient("http://127.0.0.1:9", ADMIN_LOGIN, ADMIN_PASSWORD, timeout=1) as client,
        pytest.raises(StarfaceUnavailable) as caught,
    ):
        client.check_access()
    assert "cannot reach STARFACE" in caught.value.message


def test_it_checks_access_of_the_service_account(rest: StarfaceRestClient) -> None:
    access = rest.check_access()
    assert (access.login, access.account_id, access.user_count, access.group_count) == (ADMIN_LOGIN, 1, 5, 1)


def test_it_never_sends_the_raw_password(
    rest: StarfaceRestClient, bridge, control: StarfaceSimControl
) -> None:
    rest.set_dnd(BOB, True)
    rest.group_member_ids(7)
    bridge.get_states()
    control.expire_tokens()
    rest.list_users()  # a re-login as well

    log = control.request_log()

    assert {e["path"] for e in log} >= {"/rest/login", "/rest/users", "/xml-rpc"}
    for entry in log:
        wire = entry["query"] + entry["body"] + " ".join(f"{k}: {v}" for k, v in entry["headers"].items())
        assert ADMIN_PASSWORD not in wire, entry["path"]


def test_the_request_log_tells_a_write_that_landed_from_one_a_fault_answered(
    rest: StarfaceRestClient, bridge, control: StarfaceSimControl
) -> None:
    """The chaos suite counts writes by these answers: only a 2xx that is no XML-RPC fault was applied."""
    rest.set_dnd(BOB, True)
    control.inject_fault(f"/rest/users/{BOB}/phoneconfig", status=503, method="PUT")
    with pytest.raises(StarfaceError):
        rest.set_dnd(BOB, False)
    control.inject_fault("/xml-rpc", xmlrpc_fault=500)
    with pytest.raises(StarfaceError):
        bridge.get_states()

    log = control.request_log()
    puts = [(e["status"], e["fault"]) for e in log if e["method"] == "PUT"]
    assert puts == [(204, False), (503, False)]
    assert [(e["status"], e["fault"]) for e in log if e["path"] == "/xml-rpc"] == [(200, True)]
    assert all(e["at"] > 0 for e in log)
