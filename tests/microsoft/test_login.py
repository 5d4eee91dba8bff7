"""Real MSAL against the simulated login endpoint over TLS: caching, refresh and every AADSTS case."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import msal
import pytest
import requests

from connectors.graph import GraphAuthError, GraphClient
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_it_caches_the_token_for_its_lifetime(graph: GraphClient, control: MicrosoftSimControl) -> None:
    for _ in range(5):
        graph.check_access()
    assert control.count("token") == 1
    assert control.count("openid") == 1
    assert control.count("users.list") == 5


def test_it_asks_msal_once_per_token_until_graph_refuses_it(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # MSAL's own cache search (two uuid4 correlation ids each) cost 9 % of a worker polling small tenants.
    asked: list[str] = []
    real = msal.ConfidentialClientApplication.acquire_token_for_client

    def counted(app: msal.ConfidentialClientApplication, *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append("token")
        return real(app, *args, **kwargs)

    monkeypatch.setattr(msal.ConfidentialClientApplication, "acquire_token_for_client", counted)
    for _ in range(5):
        graph.get_presence(tenant["users"][0]["id"])
    assert len(asked) == 1
    control.advance_clock(3600)  # Graph says 401 "expired" before MSAL thinks so: forgotten there and here
    graph.get_presence(tenant["users"][0]["id"])
    assert len(asked) == 2 and control.count("token") == 2


def test_it_refreshes_a_token_close_to_expiry(graph: GraphClient, control: MicrosoftSimControl) -> None:
    # MSAL treats a token with < 300 s left as expired; a 301 s token is stale after about a second.
    control.configure(tokenLifetime=301)
    graph.check_access()
    deadline = time.monotonic() + 5
    while control.count("token") < 2 and time.monotonic() < deadline:
        graph.check_access()
    assert control.count("token") == 2


def test_it_requests_a_token_every_call_when_lifetime_is_within_msal_margin(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    control.configure(tokenLifetime=300)
    graph.get_presence(tenant["users"][0]["id"])
    graph.get_presence(tenant["users"][0]["id"])
    assert control.count("token") == 2


def test_it_issues_tokens_with_tenant_app_and_roles(sim: MicrosoftSimulator, tenant: dict[str, Any]) -> None:
    app = tenant["apps"][0]
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca_path)) as http:
        response = http.post(
            f"{sim.base_url}/{tenant['domain']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": app["clientId"],
                "client_secret": app["secret"],
                "scope": "https://graph.microsoft.com/.default",
            },
        )
    body = response.json()
    claims = _claims(body["access_token"])
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3599)
    assert claims["tid"] == tenant["id"] and claims["appid"] == app["clientId"]
    assert claims["roles"] == app["roles"] and claims["exp"] - claims["iat"] == 3599


def test_it_reports_a_wrong_secret_as_7000215(make_client: Callable[..., GraphClient]) -> None:
    client = make_client(secret="not-the-secret-xyz")
    with pytest.raises(GraphAuthError) as caught:
        client.check_access()
    assert caught.value.aadsts_code == 7000215 and caught.value.permanent
    assert "Value" in caught.value.fix
    assert "not-the-secret-xyz" not in str(caught.value)


def test_it_reports_an_expired_secret_as_7000222(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    control.expire_secrets(tenant["id"], tenant["apps"][0]["clientId"])
    with pytest.raises(GraphAuthError) as caught:
        make_client().check_access()
    assert caught.value.aadsts_code == 7000222
    assert tenant["apps"][0]["secret"] not in str(caught.value)


def test_it_reports_revoked_consent_as_700016(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    control.set_consent(tenant["id"], tenant["apps"][0]["clientId"], False)
    with pytest.raises(GraphAuthError) as caught:
        make_client().check_access()
    assert caught.value.aadsts_code == 700016
    assert "admin consent" in caught.value.fix


@pytest.mark.parametrize("directory", ["00000000-0000-0000-0000-000000000001", "nowhere.example"])
def test_it_reports_an_unknown_tenant_as_90002(
    make_client: Callable[..., GraphClient], directory: str
) -> None:
    with pytest.raises(GraphAuthError) as caught:
        make_client(directory=directory).check_access()
    assert caught.value.aadsts_code == 90002


def test_it_accepts_the_tenant_domain_as_directory(
    make_client: Callable[..., GraphClient], tenant: dict[str, Any]
) -> None:
    assert "Presence.ReadWrite.All" in make_client(directory=tenant["domain"]).check_access()


def test_it_rejects_a_scope_without_default_and_other_grants(
    sim: MicrosoftSimulator, tenant: dict[str, Any]
) -> None:
    app = tenant["apps"][0]
    url = f"{sim.base_url}/{tenant['id']}/oauth2/v2.0/token"
    base = {"client_id": app["clientId"], "client_secret": app["secret"]}
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca_path)) as http:
        scope = http.post(url, data={**base, "grant_type": "client_credentials", "scope": "User.Read"})
        grant = http.post(
            url, data={**base, "grant_type": "password", "scope": "https://graph.microsoft.com/.default"}
        )
    assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    mapped = GraphAuthError.from_token_error(
        "invalid_scope", scope.json()["error_codes"], scope.json()["error_description"]
    )
    assert "/.default" in mapped.fix


def test_it_serves_msal_with_instance_discovery_off(
    sim: MicrosoftSimulator, tenant: dict[str, Any], control: MicrosoftSimControl
) -> None:
    app = tenant["apps"][0]
    session = requests.Session()
    session.verify, session.trust_env = sim.ca_path, False
    cca = msal.ConfidentialClientApplication(
        app["clientId"],
        client_credential=app["secret"],
        authority=f"{sim.base_url}/{tenant['id']}",
        instance_discovery=False,
        http_client=session,
    )
    first = cca.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    second = cca.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    session.close()
    assert first["token_source"] == "identity_provider" and second["token_source"] == "cache"
    assert control.count("discovery") == 0


def test_it_gets_a_new_token_when_graph_says_expired(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    graph.get_presences([user])
    control.advance_clock(3600)  # the simulator now considers the token expired; MSAL does not know yet
    assert [p.user_id for p in graph.get_presences([user])] == [user]
    assert control.count("token") == 2
    statuses = [e["status"] for e in control.requests(route="getPresencesByUserId")["entries"]]
    assert statuses == [200, 401, 200]
