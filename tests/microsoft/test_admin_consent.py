"""Issue 16: onboarding through admin consent. The link our helper builds, opened at the simulated Entra,
redirects back like the v2-admin-consent page documents; consent granted, refused and revoked each show
up at the token endpoint (7000229) and in the connector's error with the fix for the customer."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from connectors.graph import (
    CONSENT_FIX,
    CertificateCredential,
    GraphAuthError,
    GraphClient,
    admin_consent_url,
    parse_admin_consent_redirect,
)
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator, make_seed, stable_id
from simulators.microsoft.seed import ALL_ROLES
from tests.microsoft.certs import CertFixture, make_certificate

PROVIDER_APP = stable_id("provider-app")
REDIRECT = "https://teamsconnect.example/onboarding/consent"


@pytest.fixture(scope="module")
def certificate() -> CertFixture:
    return make_certificate()


@pytest.fixture
def provider(control: MicrosoftSimControl, certificate: CertFixture) -> str:
    """The provider's app, registered but consented nowhere yet."""
    return control.add_application(
        PROVIDER_APP, redirect_uris=[REDIRECT], roles=ALL_ROLES, certificates=[certificate.cert_pem]
    )


@pytest.fixture
def browser(sim: MicrosoftSimulator) -> Iterator[httpx.Client]:
    """The administrator's browser: follows nothing, so the test sees Entra's redirect itself."""
    with httpx.Client(
        verify=ssl.create_default_context(cafile=sim.ca_path), follow_redirects=False
    ) as client:
        yield client


@pytest.fixture
def customer_graph(
    sim: MicrosoftSimulator, certificate: CertFixture, tenant: dict[str, Any]
) -> Iterator[GraphClient]:
    credential = CertificateCredential(certificate.key_pem, certificate.cert_pem)
    client = GraphClient(
        tenant["id"],
        PROVIDER_APP,
        credential,
        login_base_url=sim.base_url,
        graph_base_url=sim.base_url,
        verify=sim.ca_path,
    )
    yield client
    client.close()


def _consent_link(sim: MicrosoftSimulator, tenant: dict[str, Any], state: str = "signed.state-1") -> str:
    return admin_consent_url(tenant["domain"], PROVIDER_APP, REDIRECT, state, login_base_url=sim.base_url)


def _redirect(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return dict(parse_qsl(location.query))


def test_it_needs_consent_before_it_gets_a_token(
    provider: str, customer_graph: GraphClient, control: MicrosoftSimControl
) -> None:
    with pytest.raises(GraphAuthError) as caught:
        customer_graph.check_access()
    assert caught.value.aadsts_code == 7000229 and caught.value.permanent
    assert caught.value.fix == CONSENT_FIX
    assert "Global Administrator" in CONSENT_FIX and "admin-consent link" in CONSENT_FIX
    assert control.requests(route="token")["entries"][0]["status"] == 401


def test_the_admin_consent_link_grants_consent_and_comes_back_with_tenant_and_state(
    provider: str,
    sim: MicrosoftSimulator,
    browser: httpx.Client,
    customer_graph: GraphClient,
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
) -> None:
    answer = _redirect(browser.get(_consent_link(sim, tenant)))
    assert answer == {
        "admin_consent": "True",
        "tenant": tenant["id"],
        "scope": "https://graph.microsoft.com/.default",
        "state": "signed.state-1",
    }
    result = parse_admin_consent_redirect(answer)
    assert (result.tenant, result.state) == (tenant["id"], "signed.state-1")
    assert set(customer_graph.check_access()) == set(ALL_ROLES)
    assert control.consent_state(PROVIDER_APP, tenant["id"])["consented"]
    assert not control.consent_state(PROVIDER_APP, other_tenant["id"])["consented"]  # only where consented


def test_a_refusing_administrator_is_reported_with_the_documented_error(
    provider: str,
    sim: MicrosoftSimulator,
    browser: httpx.Client,
    customer_graph: GraphClient,
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    control.consent(PROVIDER_APP, tenant["id"], "refuse")
    answer = _redirect(browser.get(_consent_link(sim, tenant, state="s2")))
    assert (answer["admin_consent"], answer["error"], answer["state"]) == ("True", "consent_required", "s2")
    assert answer["error_description"].startswith("AADSTS65004:") and "tenant" not in answer
    with pytest.raises(GraphAuthError) as refused:
        parse_admin_consent_redirect(answer)
    assert refused.value.aadsts_code == 65004 and refused.value.fix == CONSENT_FIX
    with pytest.raises(GraphAuthError) as no_token:
        customer_graph.check_access()
    assert no_token.value.aadsts_code == 7000229


def test_a_revoked_consent_stops_new_tokens(
    provider: str,
    sim: MicrosoftSimulator,
    certificate: CertFixture,
    customer_graph: GraphClient,
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    control.consent(PROVIDER_APP, tenant["id"], "grant")
    customer_graph.check_access()
    control.consent(PROVIDER_APP, tenant["id"], "revoke")
    fresh = GraphClient(
        tenant["id"],
        PROVIDER_APP,
        CertificateCredential(certificate.key_pem, certificate.cert_pem),
        login_base_url=sim.base_url,
        graph_base_url=sim.base_url,
        verify=sim.ca_path,
    )
    with pytest.raises(GraphAuthError) as caught:
        fresh.check_access()
    fresh.close()
    assert caught.value.aadsts_code == 7000229


def test_the_consent_endpoint_shows_an_error_page_where_it_must_not_redirect(
    provider: str, sim: MicrosoftSimulator, browser: httpx.Client, tenant: dict[str, Any]
) -> None:
    base = f"{sim.base_url}/{tenant['id']}"
    cases = {
        "unregistered redirect": (
            f"{base}/adminconsent",
            {"client_id": PROVIDER_APP, "redirect_uri": "https://evil.example/cb", "state": "x"},
            "AADSTS50011",
        ),
        "unknown app": (
            f"{base}/adminconsent",
            {"client_id": stable_id("nobody"), "redirect_uri": REDIRECT},
            "AADSTS700016",
        ),
        "v2 without scope": (
            f"{base}/v2.0/adminconsent",
            {"client_id": PROVIDER_APP, "redirect_uri": REDIRECT},
            "AADSTS900144",
        ),
        "unknown tenant": (
            f"{sim.base_url}/nowhere.example/adminconsent",
            {"client_id": PROVIDER_APP, "redirect_uri": REDIRECT},
            "AADSTS90002",
        ),
    }
    for name, (url, params, code) in cases.items():
        response = browser.get(url, params=params)
        assert response.status_code == 400 and "location" not in response.headers, name
        assert code in response.text, name
    v1 = browser.get(f"{base}/adminconsent", params={"client_id": PROVIDER_APP, "redirect_uri": REDIRECT})
    assert dict(parse_qsl(urlsplit(v1.headers["location"]).query)) == {
        "admin_consent": "True",
        "tenant": tenant["id"],
    }


def test_it_builds_the_admin_consent_link() -> None:
    url = admin_consent_url("contoso.example", "app-id", "https://tc.example/cb?x=1", "a b/c+d")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "login.microsoftonline.com",
        "/contoso.example/v2.0/adminconsent",
    )
    assert dict(parse_qsl(parts.query)) == {
        "client_id": "app-id",
        "scope": "https://graph.microsoft.com/.default",
        "redirect_uri": "https://tc.example/cb?x=1",
        "state": "a b/c+d",
    }
    assert admin_consent_url("organizations", "a", "http://localhost:8080/cb", "s").startswith(
        "https://login.microsoftonline.com/organizations/v2.0/adminconsent?"
    )
    for bad in (
        {"tenant": "common"},
        {"redirect_uri": "http://tc.example/cb"},
        {"redirect_uri": "https://tc.example/cb#frag"},
        {"state": ""},
        {"scope": "https://graph.microsoft.com/User.Read.All"},
    ):
        args = {"tenant": "t", "client_id": "a", "redirect_uri": "https://tc.example/cb", "state": "s", **bad}
        with pytest.raises(ValueError):
            admin_consent_url(**args)


def test_a_seed_can_declare_the_provider_app_and_its_consents(certificate: CertFixture) -> None:
    seed = make_seed(n_users=2, tenants=("contoso", "fabrikam"))
    seed["applications"] = [
        {
            "clientId": PROVIDER_APP,
            "redirectUris": [REDIRECT],
            "roles": ALL_ROLES,
            "certificates": [certificate.cert_pem],
            "consentedTenants": ["contoso.example"],
        }
    ]
    with MicrosoftSimulator(seed) as sim:
        control = MicrosoftSimControl(sim.base_url, verify=sim.ca_path)
        contoso, fabrikam = seed["tenants"]
        assert control.consent_state(PROVIDER_APP, contoso["id"]) == {
            "consented": True,
            "decision": "approve",
        }
        assert not control.consent_state(PROVIDER_APP, fabrikam["id"])["consented"]
        control.close()
