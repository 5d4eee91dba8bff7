"""REST login: the reference's test vectors, nonce rules, re-login on 401, logout, failures."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors.starface import StarfaceLoginFailed, StarfaceProtocolError, StarfaceRestClient
from connectors.starface._auth import login_secret, uci_token
from simulators.starface import StarfaceSimControl, StarfaceSimulator, internal_login_secret
from simulators.starface import uci_token as sim_uci_token
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD

VECTOR_NONCE = "pds24hmip1ctbogn1l8ujvs5u4"
VECTOR_SECRET = (
    "0001:5e9c7778287782c26d32e0d754b491efde1c5618037e64e46802f91b8ab14959f64e34d7f93f2a25ec71bbbc69638d71bea82"
    "f3b81e9edb0e0cc66f60ef64f04"
)


def test_it_computes_the_reference_login_test_vector() -> None:
    # reference §1.1: 0001 / foobar / pds24hmip1ctbogn1l8ujvs5u4, on both independent implementations
    assert login_secret("Internal", "0001", VECTOR_NONCE, "foobar") == VECTOR_SECRET
    assert internal_login_secret("0001", VECTOR_NONCE, "foobar") == VECTOR_SECRET
    assert (
        login_secret("ActiveDirectory", "0001", VECTOR_NONCE, "foobar")
        == "MDAwMXBkczI0aG1pcDFjdGJvZ24xbDh1anZzNXU0Zm9vYmFy"
    )


def test_it_computes_the_reference_uci_token_vector() -> None:
    # reference §1.2: 123 / Pass123
    expected = (
        "123:81d8af78c98b153485f7d48e3437eb735ba37f0f013c5e06ba74536776c5945694e7cde71e2effbed7b5a1d1a45"
        "66fadcd847ef4098c234052fdfd288e8b6ced"
    )
    assert uci_token("123", "Pass123") == expected
    assert sim_uci_token("123", "Pass123") == expected


def test_it_logs_in_and_sends_token_and_x_version(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    rest.list_users()
    log = control.request_log()
    assert [(e["method"], e["path"]) for e in log] == [
        ("GET", "/rest/login"),
        ("POST", "/rest/login"),
        ("GET", "/rest/users"),
    ]
    users_call = {k.lower(): v for k, v in log[2]["headers"].items()}
    assert users_call["x-version"] == "2"
    assert users_call["authtoken"]


def test_it_burns_a_nonce_after_one_use(sim: StarfaceSimulator) -> None:
    with httpx.Client(base_url=sim.base_url) as http:
        challenge = http.get("/rest/login").json()
        body = {**challenge, "secret": internal_login_secret(ADMIN_LOGIN, challenge["nonce"], ADMIN_PASSWORD)}
        assert http.post("/rest/login", json=body).status_code == 200
        replay = http.post("/rest/login", json=body)
    assert replay.status_code == 400
    assert replay.json() == {"code": "LOGIN_FAILED", "message": "invalid login"}


def test_it_answers_401_without_or_with_an_unknown_token(sim: StarfaceSimulator) -> None:
    with httpx.Client(base_url=sim.base_url) as http:
        assert http.get("/rest/users").status_code == 401
        rejected = http.get("/rest/users", headers={"authToken": "not-a-token"})
    assert rejected.status_code == 401
    assert rejected.json()["code"] == "UNAUTHORIZED"


def test_it_logs_in_again_once_after_the_token_expired(
    rest: StarfaceRestClient, control: StarfaceSimControl
) -> None:
    rest.list_users()
    assert control.expire_tokens() == 1
    control.clear_request_log()

    users = rest.list_users()

    assert len(users) == 5
    assert [(e["method"], e["path"]) for e in control.request_log()] == [
        ("GET", "/rest/users"),
        ("GET", "/rest/login"),
        ("POST", "/rest/login"),
        ("GET", "/rest/users"),
    ]


def test_it_relogs_in_only_once_when_every_token_is_dead(seed: dict) -> None:
    with (
        StarfaceSimulator(seed, token_lifetime_s=0.0) as sim,
        StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD) as client,
    ):
        # every token is dead on arrival: the client re-logs in once, then reports the stuck token clearly
        with pytest.raises(StarfaceProtocolError) as caught:
            client.list_users()
        assert "just issued" in str(caught.value)
        # login (2), call, login (2), call, GET /users/me to tell "not allowed" from a dead token: no loop
        assert client.requests_made == 7


def test_it_reports_a_wrong_password_without_revealing_it(sim: StarfaceSimulator) -> None:
    with (
        StarfaceRestClient(sim.base_url, ADMIN_LOGIN, "wrong-horse-battery") as client,
        pytest.raises(StarfaceLoginFailed) as caught,
    ):
        client.list_users()
    assert caught.value.permanent
    assert "password" in caught.value.message and ADMIN_LOGIN in caught.value.message
    assert "wrong-horse-battery" not in str(caught.value)


def test_it_logs_in_against_active_directory(sim: StarfaceSimulator, control: StarfaceSimControl) -> None:
    control.configure(login_type="ActiveDirectory")
    with StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD) as client:
        assert client.check_access().login == ADMIN_LOGIN
    login_post = next(e for e in control.request_log() if e["method"] == "POST")
    assert json.loads(login_post["body"])["loginType"] == "ActiveDirectory"


def test_it_logs_out_on_close(sim: StarfaceSimulator, control: StarfaceSimControl) -> None:
    client = StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD)
    client.list_users()
    token = next(e["headers"]["authToken"] for e in control.request_log() if e["path"] == "/rest/users")
    client.close()
    assert control.request_log()[-1]["method"] == "DELETE"
    with httpx.Client(base_url=sim.base_url) as http:
        assert http.get("/rest/users/me", headers={"authToken": token}).status_code == 401


def test_it_logs_in_over_tls_with_a_verified_certificate(seed: dict) -> None:
    with StarfaceSimulator(seed, tls=True) as sim:
        assert sim.base_url.startswith("https://") and sim.ca_file
        with StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, verify=sim.ca_file) as client:
            assert client.check_access().user_count == 5
