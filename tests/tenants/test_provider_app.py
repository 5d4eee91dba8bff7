"""The provider app's settings and credential, the schema's choice of app, the consent link's sealed
state, and the certificate-expiry warning (issue 16); end to end in tests/pipeline/test_provider_app.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from config.settings import SettingsError, load_settings
from models.crypto import SecretBox, generate_key
from tenants.consent import ConsentLinkInvalid, consent_link, record_answer
from tenants.provider_app import certificate_warning, provider_app
from tenants.schema import TenantConfigError, validate_config
from tenants.service import create_tenant, update_tenant
from tests.cli.conftest import TENANT
from tests.microsoft.certs import make_certificate

APP = "99999999-8888-7777-6666-555555555555"


def test_a_certificate_needs_its_private_key_and_a_client_id() -> None:
    with pytest.raises(SettingsError, match="PROVIDER_PRIVATE_KEY go together"):
        load_settings({"TEAMSCONNECT_PROVIDER_CERTIFICATE": "x.pem"})
    with pytest.raises(SettingsError, match="PROVIDER_CLIENT_ID is required"):
        load_settings({"TEAMSCONNECT_PROVIDER_CLIENT_SECRET": "s3cret"})


def test_the_credential_is_read_from_pem_files_and_never_shown(tmp_path: Path) -> None:
    cert = make_certificate()
    (tmp_path / "c.pem").write_text(cert.cert_pem)
    (tmp_path / "k.pem").write_text(cert.key_pem)
    settings = load_settings({"TEAMSCONNECT_PROVIDER_CLIENT_ID": APP.upper(),
                              "TEAMSCONNECT_PROVIDER_CERTIFICATE": str(tmp_path / "c.pem"),
                              "TEAMSCONNECT_PROVIDER_PRIVATE_KEY": str(tmp_path / "k.pem")})
    app = provider_app(settings)
    assert app is not None and app.client_id == APP and app.certificate_expires_at is not None
    assert "PRIVATE KEY" not in repr(app) + repr(settings) + str(settings)


def test_the_certificate_expiry_is_warned_30_days_ahead(tmp_path: Path) -> None:
    cert = make_certificate(valid_to_days=20)
    settings = load_settings({"TEAMSCONNECT_PROVIDER_CLIENT_ID": APP,
                              "TEAMSCONNECT_PROVIDER_CERTIFICATE": cert.cert_pem,
                              "TEAMSCONNECT_PROVIDER_PRIVATE_KEY": cert.key_pem})
    app = provider_app(settings)
    warning = certificate_warning(app)
    assert warning is not None and "expires on" in warning and "PROVIDER_CERTIFICATE" in warning
    assert certificate_warning(app, datetime.now(UTC) - timedelta(days=60)) is None
    assert "expired on" in (certificate_warning(app, datetime.now(UTC) + timedelta(days=30)) or "")


def test_the_own_app_needs_id_and_secret_the_provider_app_neither() -> None:
    own = copy.deepcopy(TENANT)
    del own["microsoft"]["client_secret"]
    with pytest.raises(TenantConfigError, match="client_secret required for the customer's own app"):
        validate_config(own)
    provider = copy.deepcopy(own)
    provider["microsoft"] = {"app": "provider", "directory_id": own["microsoft"]["directory_id"]}
    assert validate_config(provider).microsoft.client_secret is None


def test_a_consent_answer_counts_only_for_the_tenant_its_link_was_made_for(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    definition = copy.deepcopy(TENANT)
    definition["microsoft"] = {"app": "provider", "directory_id": TENANT["microsoft"]["directory_id"]}
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, definition)
        url = consent_link(session, box, tenant, APP, "https://tc.example/onboarding/consent")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert query["client_id"] == APP and query["scope"] == "https://graph.microsoft.com/.default"
        answer = record_answer(session, box, {"admin_consent": "True", "tenant": "t-guid",
                                              "state": query["state"]})
        assert answer.granted and answer.tenant.id == tenant.id and tenant.consent.status == "granted"
        for forged in ("", "not-a-state", SecretBox([generate_key()]).encrypt('{"tenant_id": 1}')):
            with pytest.raises(ConsentLinkInvalid):
                record_answer(session, box, {"admin_consent": "True", "tenant": "x", "state": forged})
        refused = record_answer(session, box, {"error": "access_denied", "state": query["state"],
                                               "error_description": "AADSTS65004: User declined to consent"})
        assert not refused.granted and refused.error_code == "AADSTS65004"
        assert "Global Administrator" in refused.message


def test_moving_to_the_provider_app_keeps_the_own_apps_credentials_for_a_move_back(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, copy.deepcopy(TENANT))
        secret = tenant.ms_client_secret_encrypted
        assert update_tenant(session, box, tenant, {"microsoft.app": "provider"}) == ["microsoft.app"]
        assert tenant.uses_provider_app and tenant.ms_client_secret_encrypted == secret
        assert update_tenant(session, box, tenant, {"microsoft.app": "own"}) == ["microsoft.app"]
        assert not tenant.uses_provider_app
