"""The simulator answers the vendor's own clients as they expect (STARFACEGmbH/rest-examples).

Each test replays, over HTTP, the exact request shapes one of the vendor's clients sends for login, users,
groups and phoneconfig (method, path, headers, body fields), and checks every answer against the schemas
of the vendor's Swagger for REST 6.7.0.22 (`javascript/docs/starface-api.yaml`): field names, JSON types
and required fields. The shapes are written down here from the clients' source; no vendor code runs.

- Java (`java/src/main/.../StarfaceAuthenticator.java`, `UsersRestClient.java`, `GroupsRestClient.java`):
  OkHttp sends every call WITHOUT a token first; its Authenticator logs in (GET /rest/login without any
  header, POST with Content-Type and X-Version: 2) only when that call is answered 401, then repeats it
  with `authToken` and without X-Version.
- PHP (`php/app/Starface/REST/RestClientApiPbx.php`, `RestBasicClient.php`): curl, every call with
  `Content-Type: application/json; charset=utf-8` and `X-Version: 2`, the URL ends in "?" (empty query);
  PUT goes to `/groups/` with a trailing slash; login and the group write check for 200 and 204.
- Generated JavaScript client (swagger-codegen, `javascript/src/starface-rest-api/src/api/*.js`, headers
  from `javascript/src/main.js`): superagent with `X-Version: 2`, `authToken`, `Content-Type` and
  `Accept: application/json` on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.starface import StarfaceSimControl, StarfaceSimulator, internal_login_secret
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, ALICE, BOB

# The Swagger definitions we use, as {field: type}; a list means "array of that definition".
_S = str
SCHEMAS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "Login": ({"loginType": _S, "nonce": _S, "secret": _S}, {"loginType", "nonce"}),
    "AuthToken": ({"token": _S}, {"token"}),
    "User": (
        {
            "id": int, "login": _S, "email": _S, "firstName": _S, "familyName": _S, "language": _S,
            "namespace": _S, "personId": _S, "password": _S, "faxCallerId": _S, "faxHeader": _S,
            "faxCoverPage": bool, "faxEmailJournal": bool, "missedCallReport": bool,
        },
        {"email", "familyName", "firstName", "language", "login"},
    ),
    "PhoneConfig": (
        {"callWaiting": bool, "displayNumberId": int, "doNotDisturb": bool, "primaryPhoneId": int},
        {"callWaiting", "displayNumberId", "doNotDisturb", "primaryPhoneId"},
    ),
    "GroupListItem": (
        {"id": int, "groupname": _S, "groupinternalnumber": _S, "groupexternalnumber": _S}, set()
    ),
    "Group": (
        {
            "id": int, "groupId": _S, "name": _S, "chatGroup": bool, "voicemail": bool,
            "assignableUsers": ["AssignableUser"], "assignableNumbers": ["AssignableNumber"],
        },
        set(),
    ),
    "AssignableUser": ({"id": int, "firstname": _S, "lastname": _S, "assigned": bool}, set()),
    "AssignableNumber": (
        {
            "id": int, "assigned": bool, "intern": bool, "countryCode": _S, "localAreaCode": _S,
            "exitCode": _S, "extension": _S,
        },
        set(),
    ),
}  # fmt: skip
# Stated deviation (docs/starface-bridge.md): the vendor's login example shows `"secret": null` in the
# GET /rest/login answer although `Login.secret` is typed string; the simulator sends null like the PBX.
NULL_ALLOWED = {("Login", "secret")}


def assert_schema(value: Any, name: str, where: str = "") -> None:
    """`value` is a `name` of the spec: no unknown field, required fields present, every type right."""
    where = where or name
    fields, required = SCHEMAS[name]
    assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
    assert set(value) <= set(fields), f"{where}: fields not in the spec: {set(value) - set(fields)}"
    assert required <= set(value), f"{where}: required fields missing: {required - set(value)}"
    for field, kind in fields.items():
        if field not in value:
            continue
        got = value[field]
        if got is None and (name, field) in NULL_ALLOWED:
            continue
        if isinstance(kind, list):
            assert isinstance(got, list), f"{where}.{field}: expected an array, got {got!r}"
            for i, item in enumerate(got):
                assert_schema(item, kind[0], f"{where}.{field}[{i}]")
        elif kind is int:
            assert type(got) is int, f"{where}.{field}: expected integer, got {got!r}"
        else:
            assert isinstance(got, kind), f"{where}.{field}: expected {kind.__name__}, got {got!r}"


def assert_list(value: Any, name: str) -> list[Any]:
    assert isinstance(value, list), f"expected an array of {name}, got {value!r}"
    for i, item in enumerate(value):
        assert_schema(item, name, f"{name}[{i}]")
    return value


@pytest.fixture
def http(sim: StarfaceSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5.0) as client:
        yield client


# --- Java (OkHttp + StarfaceAuthenticator) ---


class JavaClient:
    """OkHttp with StarfaceAuthenticator: no token until a 401, then a new login and one repeat."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.logins = 0

    def _authenticate(self) -> str:
        login = self.http.get("/rest/login")  # requestNonceFromPbx: no header at all
        assert login.status_code == 200
        assert_schema(login.json(), "Login")
        nonce = login.json()["nonce"]
        secret = internal_login_secret(ADMIN_LOGIN, nonce, ADMIN_PASSWORD)
        answer = self.http.post(  # requestToken: a Map, so only these three fields
            "/rest/login",
            headers={"Content-Type": "application/json", "X-Version": "2"},
            json={"loginType": "Internal", "nonce": nonce, "secret": secret},
        )
        assert answer.status_code == 200
        assert_schema(answer.json(), "AuthToken")
        self.logins += 1
        return answer.json()["token"]

    def call(self, method: str, path: str, body: Any = None, content_type: bool = False) -> httpx.Response:
        headers = {"Content-Type": "application/json"} if content_type else {}
        first = self.http.request(method, path, json=body, headers=headers)
        assert first.status_code == 401, "OkHttp's Authenticator only logs in on a 401"
        headers["authToken"] = self._authenticate()
        return self.http.request(method, path, json=body, headers=headers)


def test_it_serves_the_vendor_java_client(http: httpx.Client, control: StarfaceSimControl) -> None:
    java = JavaClient(http)
    # UsersRestClient.createUser: CreateUserRequest as in GroupsRestClientTest.setup
    created = java.call(
        "POST",
        "/rest/users",
        {
            "email": "test@starface.com", "familyName": "Test", "firstName": "Test", "language": "en",
            "login": "1002", "password": "secret1234!", "faxCoverPage": False, "faxEmailJournal": False,
            "missedCallReport": False,
        },
        content_type=True,
    )  # fmt: skip
    assert created.status_code == 201
    users = assert_list(java.call("GET", "/rest/users").json(), "User")
    new_user = next(u for u in users if u["login"] == "1002")

    overview = assert_list(java.call("GET", "/rest/groups").json(), "GroupListItem")
    group = java.call("GET", f"/rest/groups/{overview[0]['id']}").json()
    assert_schema(group, "Group")
    members_before = {u["id"] for u in group["assignableUsers"] if u["assigned"]}
    # GroupsRestClient.addUserToGroup: the whole Group, assignableUsers replaced by the one user to add
    java_group = {
        "id": group["id"], "name": group["name"], "chatGroup": group["chatGroup"],
        "voicemail": group["voicemail"], "groupId": group["groupId"],
        "assignableNumbers": group["assignableNumbers"],
        "assignableUsers": [
            {"id": new_user["id"], "firstname": "Test", "lastname": "Test", "assigned": True}
        ],
    }  # fmt: skip
    assert java.call("PUT", "/rest/groups", java_group, content_type=True).status_code == 204
    after = java.call("GET", f"/rest/groups/{group['id']}").json()
    assert {u["id"] for u in after["assignableUsers"] if u["assigned"]} == members_before | {new_user["id"]}

    deleted = java.call("DELETE", f"/rest/users/{new_user['id']}", content_type=True)  # cleanup
    assert deleted.status_code == 204
    assert "1002" not in {u["login"] for u in java.call("GET", "/rest/users").json()}
    assert java.logins == 8  # one login per call, as the vendor's client does


# --- PHP (curl, RestClientApiPbx) ---


def test_it_serves_the_vendor_php_client(http: httpx.Client, control: StarfaceSimControl) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Version": "2"}

    def php(method: str, path: str, body: Any = None) -> httpx.Response:
        return http.request(method, f"/rest/{path.strip('/')}?", json=body, headers=headers)

    login = php("GET", "/login").json()  # login(): the template, secret filled in, posted back whole
    assert_schema(login, "Login")
    login["secret"] = internal_login_secret(ADMIN_LOGIN, login["nonce"], ADMIN_PASSWORD)
    token = php("POST", "/login", login)
    assert token.status_code == 200 and token.json()["token"]
    headers["authToken"] = token.json()["token"]

    assert_list(php("GET", "/users").json(), "User")
    assert_schema(php("GET", "/users/me").json(), "User")
    assert_schema(php("GET", f"/users/{BOB}").json(), "User")
    assert php("GET", "/accounts").status_code == 200  # getAccounts (Account is not a schema we use)
    groups = assert_list(php("GET", "/groups").json(), "GroupListItem")
    group = php("GET", f"/groups/{groups[0]['id']}").json()  # getGroupByName -> getGroupById
    assert_schema(group, "Group")
    # addUserToGroup: flips `assigned` in the fetched group and PUTs it whole to "/groups/" (slash kept)
    for user in group["assignableUsers"]:
        if user["id"] == 102:
            user["assigned"] = True
    answer = http.put("/rest/groups/?", json=group, headers=headers)
    assert answer.status_code == 204  # updateGroup() checks for exactly 204
    assert control.request_log()[-1]["path"] == "/rest/groups/"

    assert php("DELETE", "/login").status_code == 204  # logout() checks for exactly 204
    assert php("GET", "/users/me").status_code == 401


# --- generated JavaScript client (swagger-codegen + superagent) ---


def test_it_serves_the_vendor_generated_javascript_client(
    http: httpx.Client, control: StarfaceSimControl
) -> None:
    headers = {"X-Version": "2", "Content-Type": "application/json", "Accept": "application/json"}

    def js(method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        return http.request(method, f"/rest{path}", json=body, headers=headers, params=params)

    template = js("GET", "/login")  # LoginApi.getLogin -> Login
    assert template.status_code == 200
    login = template.json()
    assert_schema(login, "Login")
    login["secret"] = internal_login_secret(ADMIN_LOGIN, login["nonce"], ADMIN_PASSWORD)  # main.js
    token = js("POST", "/login", login)  # LoginApi.login -> AuthToken
    assert token.status_code == 200
    assert_schema(token.json(), "AuthToken")
    headers["authToken"] = token.json()["token"]

    # UsersApi
    assert_list(js("GET", "/users", searchTerm="example").json(), "User")
    assert_schema(js("GET", "/users/me").json(), "User")
    bob = js("GET", f"/users/{BOB}").json()
    assert_schema(bob, "User")
    assert js("PUT", f"/users/{BOB}", {**bob, "firstName": "Robert"}).status_code == 204  # putUser
    assert js("GET", f"/users/{BOB}").json()["firstName"] == "Robert"
    new_user = {"email": "js@example.test", "familyName": "Script", "firstName": "Java", "language": "en",
                "login": "1500", "password": "js-password-1"}  # fmt: skip
    assert js("POST", "/users", new_user).status_code == 201  # postUser
    created = next(u for u in js("GET", "/users").json() if u["login"] == "1500")
    assert js("DELETE", f"/users/{created['id']}").status_code == 204  # deleteUser
    assert js("GET", f"/users/{created['id']}").status_code == 404  # documented 404

    config = js("GET", f"/users/{ALICE}/phoneconfig").json()  # getPhoneConfig -> PhoneConfig
    assert_schema(config, "PhoneConfig")
    put = js("PUT", f"/users/{ALICE}/phoneconfig", {**config, "doNotDisturb": True})  # putPhoneConfig
    assert put.status_code == 204 and put.content == b""
    assert js("GET", f"/users/{ALICE}/phoneconfig").json()["doNotDisturb"] is True

    # GroupsApi
    groups = assert_list(js("GET", "/groups", searchTerm="Supp").json(), "GroupListItem")
    group = js("GET", f"/groups/{groups[0]['id']}").json()
    assert_schema(group, "Group")
    assert js("PUT", "/groups", {**group, "name": "Support 2"}).status_code == 204  # saveGroup
    assert js("POST", "/groups", {"name": "Sales", "assignableUsers": []}).status_code == 204  # createGroup
    sales = next(g for g in js("GET", "/groups").json() if g["groupname"] == "Sales")
    assert js("DELETE", f"/groups/{sales['id']}").status_code == 204  # deleteGroup

    assert js("DELETE", "/login").status_code == 204  # LoginApi.logout


def test_it_round_trips_a_fetched_user_without_touching_the_password(http: httpx.Client) -> None:
    # `User.password` comes back "" (typed string, "empty when fetched"), so a client that PUTs the fetched
    # user back (the generated client turns a null into the string "null") keeps the password
    headers = {"X-Version": "2"}
    login = http.get("/rest/login").json()
    login["secret"] = internal_login_secret("1101", login["nonce"], "pw-1101")
    headers["authToken"] = http.post("/rest/login", json=login).json()["token"]
    me = http.get("/rest/users/me", headers=headers).json()
    assert me["password"] == ""
    assert http.put(f"/rest/users/{me['id']}", json=me, headers=headers).status_code == 204
    again = http.get("/rest/login").json()
    again["secret"] = internal_login_secret("1101", again["nonce"], "pw-1101")
    assert http.post("/rest/login", json=again).status_code == 200
