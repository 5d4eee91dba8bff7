"""Issue 16 end to end: a tenant onboarded only by the admin-consent link of the provider's multi-tenant
app (certificate credential, no secret entered) syncs Teams -> STARFACE; a refused consent, a revoked
consent, a wrong certificate and an expired certificate each give the documented AADSTS error and a fix
in the tenant's health and `tenant show`; a tenant moved from its own app to the provider app keeps its
links and applied states. Real PostgreSQL, Redis, Celery workers and both simulators over HTTP(S)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from embedded.stack import Stack, StackFactory
from models import AppliedState, Tenant, TenantHealth, UserLink
from models.db import transaction
from simulators.microsoft import stable_id
from simulators.microsoft.seed import ALL_ROLES
from simulators.paired import paired_seeds
from sync.poll import run_poll
from sync.ports import CollectingQueue
from tenants.consent import consent_link
from tenants.service import update_tenant
from tenants.summary import tenant_summary
from tests.microsoft.certs import CertFixture, make_certificate

PROVIDER_APP = stable_id("teamsconnect-provider-app")
USERS = 3


def _provider_env(tmp_path: Path, certificate: CertFixture) -> dict[str, str]:
    cert_file, key_file = tmp_path / "provider.crt", tmp_path / "provider.key"
    cert_file.write_text(certificate.cert_pem)
    key_file.write_text(certificate.key_pem)
    key_file.chmod(0o600)
    return {"TEAMSCONNECT_PROVIDER_CLIENT_ID": PROVIDER_APP,
            "TEAMSCONNECT_PROVIDER_CERTIFICATE": str(cert_file),
            "TEAMSCONNECT_PROVIDER_PRIVATE_KEY": str(key_file)}


@contextmanager
def provider_stack(stacks: StackFactory, tmp_path: Path, signing: CertFixture,
                   registered: CertFixture | None = None) -> Iterator[Stack]:
    """A stack whose deployment signs in with `signing`; the simulator's app has `registered` (default:
    the same certificate) and redirects consent answers to our web app."""
    stacks.extra_env = _provider_env(tmp_path, signing)
    with contextmanager(stacks.build)(paired_seeds(USERS)) as stack:
        stack.ms.add_application(PROVIDER_APP, redirect_uris=[_callback(stack)], roles=list(ALL_ROLES),
                                 certificates=[(registered or signing).cert_pem])
        yield stack


def _callback(stack: Stack) -> str:
    return f"{stack.web_url}/onboarding/consent"


def _provider_tenant(stack: Stack) -> int:
    """A tenant on the provider app: the directory, the PBX - no client id, no secret."""
    no_own_app = {"app": "provider", "client_id": None, "client_secret": None}
    return stack.add_tenant(sync=False, microsoft=no_own_app)


def _open_consent_link(stack: Stack, tenant_id: int) -> httpx.Response:
    """The customer's Global Administrator opens the link; the simulator answers as preset and redirects
    back to our web app, which records the answer."""
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get_one(Tenant, tenant_id)
        url = consent_link(session, stack.runtime.box, tenant, PROVIDER_APP, _callback(stack))
    tls = ssl.create_default_context(cafile=stack.microsoft.ca_path)
    with httpx.Client(verify=tls, follow_redirects=True, timeout=30) as browser:
        return browser.get(url)


def _health(stack: Stack, tenant_id: int) -> TenantHealth:
    with transaction(stack.runtime.sessions) as session:
        return session.get_one(TenantHealth, tenant_id)


def _summary(stack: Stack, tenant_id: int) -> dict:
    with transaction(stack.runtime.sessions) as session:
        return tenant_summary(session.get_one(Tenant, tenant_id))


def _poll_once(stack: Stack, tenant_id: int) -> dict:
    return run_poll(stack.runtime, tenant_id, stack.linked_batch() or [(1, stable_id("nobody"))],
                    CollectingQueue())


def test_a_tenant_onboarded_only_by_consent_syncs_teams_to_starface(
    stacks: StackFactory, tmp_path: Path
) -> None:
    with provider_stack(stacks, tmp_path, make_certificate()) as stack:
        tenant_id = _provider_tenant(stack)
        page = _open_consent_link(stack, tenant_id)
        assert page.status_code == 200 and "Consent given" in page.text, page.text
        assert "OK Microsoft sign-in and user read" in page.text
        assert _summary(stack, tenant_id)["microsoft"]["admin_consent"].startswith("given for directory")
        stack.start_worker("w1")  # the callback queued the directory sync; the worker links the users
        stack.until(lambda: len(stack.linked_batch()) == USERS, timeout=30, what="users linked after consent")
        stack.teams(1, "sign_in")
        stack.teams(1, "call_start")
        stack.until(lambda: stack.user(1)["dnd"], timeout=30, what="STARFACE DND from a Teams call")
        assert stack.ms.count("token") >= 1


def test_a_refused_consent_is_shown_with_its_aadsts_error_and_the_fix(
    stacks: StackFactory, tmp_path: Path
) -> None:
    with provider_stack(stacks, tmp_path, make_certificate()) as stack:
        tenant_id = _provider_tenant(stack)
        stack.ms.consent(PROVIDER_APP, stack.seeds.tenant["id"], "refuse")
        page = _open_consent_link(stack, tenant_id)
        assert "Consent refused" in page.text and "AADSTS65004" in page.text
        assert "Global Administrator" in page.text  # the fix
        shown = _summary(stack, tenant_id)["microsoft"]["admin_consent"]
        assert shown.startswith("refused (AADSTS65004)")
        assert _poll_once(stack, tenant_id) == {"failed": "auth"}
        health = _health(stack, tenant_id)
        assert health.last_error_code == "AADSTS7000229"
        assert "admin-consent link" in (health.last_error_message or "")


def test_a_revoked_consent_is_detected_at_the_next_poll(stacks: StackFactory, tmp_path: Path) -> None:
    with provider_stack(stacks, tmp_path, make_certificate()) as stack:
        tenant_id = _provider_tenant(stack)
        assert "Consent given" in _open_consent_link(stack, tenant_id).text
        stack.ms.consent(PROVIDER_APP, stack.seeds.tenant["id"], "revoke")
        stack.runtime.close_clients()  # a new token request, as after the cached token's lifetime
        assert _poll_once(stack, tenant_id) == {"failed": "auth"}
        health = _health(stack, tenant_id)
        assert health.last_error_code == "AADSTS7000229"
        assert "admin-consent link" in (health.last_error_message or "")
        assert _summary(stack, tenant_id)["microsoft"]["admin_consent"].startswith("revoked (AADSTS7000229)")


@pytest.mark.parametrize(
    ("case", "reason"),
    # Entra answers both with AADSTS700027, the reason in its description (docs/entra-consent.md).
    [("wrong", "not registered on the app"), ("expired", "The key used is expired")],
)
def test_a_wrong_or_expired_certificate_gives_its_aadsts_error_and_fix(
    stacks: StackFactory, tmp_path: Path, case: str, reason: str
) -> None:
    registered = make_certificate()
    if case == "wrong":
        signing = make_certificate("another certificate")
    else:
        registered = signing = make_certificate(valid_from_days=-400, valid_to_days=-1)
    with provider_stack(stacks, tmp_path, signing, registered) as stack:
        tenant_id = _provider_tenant(stack)
        stack.ms.consent(PROVIDER_APP, stack.seeds.tenant["id"], "grant")
        assert _poll_once(stack, tenant_id) == {"failed": "auth"}
        health = _health(stack, tenant_id)
        assert health.last_error_code == "AADSTS700027", health.last_error_message
        message = health.last_error_message or ""
        assert reason in message and "Fix: Upload" in message


def test_a_tenant_moved_from_its_own_app_to_the_provider_app_keeps_links_and_state(
    stacks: StackFactory, tmp_path: Path
) -> None:
    with provider_stack(stacks, tmp_path, make_certificate()) as stack:
        tenant_id = stack.add_tenant(poll_interval_s=1.0)  # the customer's own app, as in the module
        stack.start_worker("w1")
        stack.teams(0, "sign_in")
        stack.teams(0, "call_start")
        stack.until(lambda: stack.user(0)["dnd"], timeout=30, what="DND with the customer's own app")
        stack.settle()
        links = select(UserLink.id, UserLink.entra_object_id)
        # Each applied state kept (a late event may still add a row or bump a version, never drop one).
        states = select(AppliedState.id, AppliedState.user_link_id, AppliedState.target)
        with transaction(stack.runtime.sessions) as session:
            links_before = sorted(session.execute(links).all())
            states_before = set(session.execute(states).all())
            stack.ms.consent(PROVIDER_APP, stack.seeds.tenant["id"], "grant")
            update_tenant(session, stack.runtime.box, session.get_one(Tenant, tenant_id),
                          {"microsoft.app": "provider"})
        with transaction(stack.runtime.sessions) as session:
            assert sorted(session.execute(links).all()) == links_before
            assert states_before <= set(session.execute(states).all())
        tokens_before = stack.ms.count("token")
        stack.teams(0, "call_end")
        stack.until(lambda: not stack.user(0)["dnd"], timeout=30, what="DND cleared via the provider app")
        assert stack.ms.count("token") > tokens_before  # signed in anew, with the certificate
