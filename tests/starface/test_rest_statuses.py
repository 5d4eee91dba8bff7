"""REST: only the documented success status counts; STARFACE's 500 for unknown ids; undocumented answers."""

from __future__ import annotations

import httpx
import pytest

from connectors.starface import (
    StarfaceNotFound,
    StarfaceProtocolError,
    StarfaceRestClient,
    StarfaceUnavailable,
    StarfaceWriteFailed,
)
from simulators.starface import StarfaceSimControl, StarfaceSimulator, internal_login_secret
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, BOB

PHONECONFIG = f"/rest/users/{BOB}/phoneconfig"


def test_it_does_not_count_a_200_unexpected_error_as_an_applied_dnd(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    # the spec documents 200 "Unexpected error" for PUT phoneconfig: the PBX did not apply the write
    control.inject_fault(PHONECONFIG, method="PUT", status=200)

    with pytest.raises(StarfaceWriteFailed) as caught:
        rest.set_dnd(BOB, True)

    assert (caught.value.status, caught.value.permanent) == (200, False)
    assert "Unexpected error" in caught.value.message and "not applied" in caught.value.message
    assert control.user_state("1101")["dnd"] is False
    assert rest.set_dnd(BOB, True).written  # the retry the worker makes goes through
    assert control.user_state("1101")["dnd"] is True


def test_it_reports_a_5xx_to_a_dnd_write_as_a_transient_write_failure(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    control.inject_fault(PHONECONFIG, method="PUT", status=500)
    with pytest.raises(StarfaceWriteFailed) as caught:
        rest.set_dnd(BOB, True)
    assert (caught.value.status, caught.value.permanent) == (500, False)


@pytest.mark.parametrize("status", [201, 202, 302])
def test_it_reports_an_undocumented_answer_to_a_write_as_permanent(
    rest: StarfaceRestClient, control: StarfaceSimControl, status: int
) -> None:
    control.inject_fault(PHONECONFIG, method="PUT", status=status)
    with pytest.raises(StarfaceWriteFailed) as caught:
        rest.set_dnd(BOB, True)
    assert caught.value.status == status and caught.value.permanent
    assert "instead of 204" in caught.value.message


def test_it_reports_an_undocumented_answer_to_a_read_as_a_protocol_error(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    control.inject_fault(PHONECONFIG, method="GET", status=204)
    with pytest.raises(StarfaceProtocolError) as caught:
        rest.get_dnd(BOB)
    assert "204" in caught.value.message and "instead of 200" in caught.value.message


def test_it_answers_500_for_an_unknown_user_and_group_as_the_spec_documents(sim: StarfaceSimulator) -> None:
    # phoneconfig and groups/{id} document only 200 and 500; users/{id} documents 404
    with httpx.Client(base_url=sim.base_url + "/rest") as http:
        challenge = http.get("/login").json()
        secret = internal_login_secret(ADMIN_LOGIN, challenge["nonce"], ADMIN_PASSWORD)
        http.headers["authToken"] = http.post("/login", json={**challenge, "secret": secret}).json()["token"]
        assert http.get("/users/999/phoneconfig").status_code == 500
        assert http.get("/groups/999").status_code == 500
        assert http.get("/users/999").status_code == 404


def test_it_tells_a_deleted_user_from_a_pbx_error(rest: StarfaceRestClient) -> None:
    with pytest.raises(StarfaceNotFound) as caught:
        rest.get_dnd(999)
    assert caught.value.permanent
    assert "user 999 does not exist" in caught.value.message


def test_it_tells_a_deleted_group_from_a_pbx_error(rest: StarfaceRestClient) -> None:
    with pytest.raises(StarfaceNotFound) as caught:
        rest.group_member_ids(999)
    assert "group 999 does not exist" in caught.value.message and "user selection" in caught.value.message


def test_it_keeps_a_500_for_an_existing_user_transient(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    control.inject_fault(PHONECONFIG, method="GET", status=500)
    with pytest.raises(StarfaceUnavailable) as caught:
        rest.get_dnd(BOB)
    assert not caught.value.permanent


def test_it_reports_a_500_to_the_login_as_transient(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    control.inject_fault("/rest/login", method="POST", status=500)  # documented: 500 "Unexpected error"
    with pytest.raises(StarfaceUnavailable) as caught:
        rest.list_users()
    assert not caught.value.permanent and "POST /rest/login" in caught.value.message
    assert len(rest.list_users()) == 5
