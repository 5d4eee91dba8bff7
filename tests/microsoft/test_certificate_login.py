"""Issue 16: the provider's multi-tenant app signs in with a certificate (real MSAL, real HTTPS) and the
simulated token endpoint checks the assertion like Entra: key registered, signature, audience, issuer,
lifetime, replay. Each refusal becomes a GraphAuthError with the documented AADSTS code and a fix."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors.graph import (
    CertificateCredential,
    GraphAuthError,
    GraphClient,
    GraphCredentialError,
)
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator, stable_id
from simulators.microsoft.seed import ALL_ROLES
from tests.microsoft.certs import CertFixture, make_certificate, sign_assertion

PROVIDER_APP = stable_id("provider-app")
REDIRECT = "https://teamsconnect.example/onboarding/consent"


@pytest.fixture(scope="module")
def certificate() -> CertFixture:
    return make_certificate()


@pytest.fixture(scope="module")
def other_certificate() -> CertFixture:
    return make_certificate("Someone else")


@pytest.fixture
def provider(
    control: MicrosoftSimControl,
    certificate: CertFixture,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
) -> str:
    """The provider's app, with the certificate registered, consented in contoso and fabrikam."""
    control.add_application(
        PROVIDER_APP, redirect_uris=[REDIRECT], roles=ALL_ROLES, certificates=[certificate.cert_pem]
    )
    for t in (tenant, other_tenant):
        control.consent(PROVIDER_APP, t["id"], "grant")
    return PROVIDER_APP


@pytest.fixture
def cert_client(sim: MicrosoftSimulator) -> Iterator[Callable[..., GraphClient]]:
    made: list[GraphClient] = []

    def build(directory: str, cert: CertFixture, client_id: str = PROVIDER_APP) -> GraphClient:
        client = GraphClient(
            directory,
            client_id,
            CertificateCredential(cert.key_pem, cert.cert_pem),
            login_base_url=sim.base_url,
            graph_base_url=sim.base_url,
            verify=sim.ca_path,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def _post_token(sim: MicrosoftSimulator, tenant_id: str, assertion: str) -> httpx.Response:
    return httpx.post(
        f"{sim.base_url}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": PROVIDER_APP,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=ssl.create_default_context(cafile=sim.ca_path),
    )


def _endpoint(sim: MicrosoftSimulator, tenant_id: str) -> str:
    return f"{sim.base_url}/{tenant_id}/oauth2/v2.0/token"


def test_it_signs_in_with_a_certificate_and_keeps_one_token_per_customer_tenant(
    provider: str,
    cert_client: Callable[..., GraphClient],
    certificate: CertFixture,
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
) -> None:
    clients = [(cert_client(t["id"], certificate), t) for t in (tenant, other_tenant)]
    for _ in range(2):
        for client, t in clients:
            presences = client.get_presences([u["id"] for u in t["users"][:3]])
            assert len(presences) == 3  # each client sees its own tenant's users only
    tokens = control.requests(route="token")["entries"]
    assert [(e["tenant"], e["status"]) for e in tokens] == [(tenant["id"], 200), (other_tenant["id"], 200)]
    # MSAL 1.39 signs PS256 with the SHA-256 thumbprint, as the certificate-credentials page asks.
    assert {e["credential"] for e in tokens} == {"assertion:PS256:x5t#S256"}


def test_it_refuses_a_certificate_that_is_not_registered_with_700027(
    provider: str,
    cert_client: Callable[..., GraphClient],
    other_certificate: CertFixture,
    tenant: dict[str, Any],
) -> None:
    with pytest.raises(GraphAuthError) as caught:
        cert_client(tenant["id"], other_certificate).check_access()
    assert caught.value.aadsts_code == 700027 and caught.value.permanent
    assert "Certificates & secrets" in caught.value.fix
    assert "PRIVATE KEY" not in str(caught.value) and other_certificate.key_pem[40:80] not in str(
        caught.value
    )


def test_it_refuses_a_registered_certificate_that_has_expired(
    control: MicrosoftSimControl, cert_client: Callable[..., GraphClient], tenant: dict[str, Any]
) -> None:
    expired = make_certificate("Old", valid_from_days=-400, valid_to_days=-1)
    control.add_application(
        PROVIDER_APP, redirect_uris=[REDIRECT], roles=ALL_ROLES, certificates=[expired.cert_pem]
    )
    control.consent(PROVIDER_APP, tenant["id"], "grant")
    with pytest.raises(GraphAuthError) as caught:
        cert_client(tenant["id"], expired).check_access()
    assert caught.value.aadsts_code == 700027 and "expired" in str(caught.value)


def test_it_refuses_a_forged_signature_a_wrong_audience_and_a_wrong_subject(
    provider: str,
    sim: MicrosoftSimulator,
    certificate: CertFixture,
    other_certificate: CertFixture,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
) -> None:
    own = _endpoint(sim, tenant["id"])
    cases = {
        "forged": (sign_assertion(other_certificate, PROVIDER_APP, own, named=certificate), 700027),
        "audience": (sign_assertion(certificate, PROVIDER_APP, _endpoint(sim, other_tenant["id"])), 50012),
        "two audiences": (sign_assertion(certificate, PROVIDER_APP, [own, own + "/x"]), 5002741),
        "subject": (sign_assertion(certificate, PROVIDER_APP, own, sub=stable_id("someone")), 50048),
        "expired": (sign_assertion(certificate, PROVIDER_APP, own, issued_at=time.time() - 2000), 700024),
        "not yet valid": (
            sign_assertion(certificate, PROVIDER_APP, own, issued_at=time.time() + 2000),
            700024,
        ),
    }
    for name, (assertion, code) in cases.items():
        response = _post_token(sim, tenant["id"], assertion)
        body = response.json()
        assert (response.status_code, body["error"], body["error_codes"]) == (
            401,
            "invalid_client",
            [code],
        ), name
    good = _post_token(sim, tenant["id"], sign_assertion(certificate, PROVIDER_APP, own))
    assert good.status_code == 200 and good.json()["token_type"] == "Bearer"


def test_it_reports_an_assertion_outside_its_time_range_as_700024(
    provider: str,
    cert_client: Callable[..., GraphClient],
    certificate: CertFixture,
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    control.advance_clock(1000)  # MSAL signs exp = now + 600 s by its own clock; the server's is later
    with pytest.raises(GraphAuthError) as caught:
        cert_client(tenant["id"], certificate).check_access()
    assert caught.value.aadsts_code == 700024 and "NTP" in caught.value.fix


def test_msal_reuses_its_assertion_which_entra_must_accept(
    provider: str,
    cert_client: Callable[..., GraphClient],
    certificate: CertFixture,
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    # MSAL caches one assertion (same jti) for 540 s. With a 301 s token it asks again within a second.
    control.configure(tokenLifetime=301)
    client = cert_client(tenant["id"], certificate)
    client.check_access()
    deadline = time.monotonic() + 5
    while control.count("token") < 2 and time.monotonic() < deadline:
        client.check_access()
    assert [e["status"] for e in control.requests(route="token")["entries"]] == [200, 200]
    # A server that refused a reused jti would break MSAL: the simulator can be made to, to show it.
    control.configure(tokenLifetime=301, rejectReusedAssertions=True)
    deadline = time.monotonic() + 5
    with pytest.raises(GraphAuthError) as caught:
        while time.monotonic() < deadline:
            client.check_access()
    assert caught.value.aadsts_code == 50013


def test_it_tells_certificate_configuration_errors_apart_without_showing_the_key(
    certificate: CertFixture, other_certificate: CertFixture
) -> None:
    credential = CertificateCredential(certificate.key_pem, certificate.cert_pem)
    assert certificate.key_pem not in repr(credential) and credential.sha1_thumbprint in repr(credential)
    assert credential.sha256_thumbprint == certificate.sha256.hex().upper()
    with pytest.raises(GraphCredentialError) as mismatch:
        CertificateCredential(other_certificate.key_pem, certificate.cert_pem)
    assert "does not belong" in str(mismatch.value) and "CN=TeamsConnect Cloud" in str(mismatch.value)
    garbled = certificate.key_pem.replace("A", "B", 20)
    with pytest.raises(GraphCredentialError) as unreadable:
        CertificateCredential(garbled, certificate.cert_pem)
    assert unreadable.value.__cause__ is None and garbled[40:80] not in str(unreadable.value)
