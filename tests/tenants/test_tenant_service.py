"""The tenant service and schema directly (tenants/): validation messages, secrets kept out of reprs and
errors, partial updates that change nothing when invalid, and the expiry warning."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from models.crypto import SecretBox
from models.secrets import read_secrets
from tenants.policy import policy_for
from tenants.schema import TenantConfigError, validate_config
from tenants.service import create_tenant, load_tenant_policies, update_tenant
from tenants.summary import secret_expiry_warning, tenant_summary
from tests.cli.conftest import CLIENT_SECRET, SECRETS, TENANT, assert_no_secret


def test_it_keeps_secrets_out_of_reprs_and_summaries(sessions: sessionmaker[Session], box: SecretBox) -> None:
    config = validate_config(copy.deepcopy(TENANT))
    assert_no_secret(repr(config) + str(config) + repr(config.model_dump()))
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, config)
        summary = tenant_summary(tenant)
        assert_no_secret(repr(summary) + repr(tenant))
        assert summary["starface"]["bridge"] == {"instance": "TeamsConnectBridge", "secret": "set"}


def test_it_never_echoes_a_secret_in_a_validation_error() -> None:
    data: dict[str, Any] = copy.deepcopy(TENANT)
    data["microsoft"]["client_secret"] = ["not", "a", CLIENT_SECRET]  # wrong type: pydantic would echo it
    data["starface"]["base_url"] = f"https://0001:{SECRETS[1]}@pbx.example"
    data["starface"]["bridge"]["secret"] = {"nested": SECRETS[2]}
    with pytest.raises(TenantConfigError) as caught:
        validate_config(data)
    fields = [where for where, _ in caught.value.problems]
    assert fields == ["microsoft.client_secret", "starface.base_url", "starface.bridge.secret"]
    assert_no_secret(str(caught.value) + repr(caught.value.problems))


def test_it_spots_a_secret_id_pasted_instead_of_the_secret_value() -> None:
    data = copy.deepcopy(TENANT)
    data["microsoft"]["client_secret"] = "5c0d8a0e-1a2b-4c3d-9e8f-0123456789ab"
    with pytest.raises(TenantConfigError, match=r"microsoft.client_secret: this looks like the secret's ID"):
        validate_config(data)


def test_it_leaves_the_row_untouched_when_a_change_is_invalid(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, validate_config(copy.deepcopy(TENANT)))
        before = (tenant.updated_at, tenant_summary(tenant), tenant.ms_client_secret_encrypted)
        with pytest.raises(TenantConfigError) as caught:
            update_tenant(session, box, tenant, {
                "options.set_dnd": False, "microsoft.client_secret": "",
                "selection": {"mode": "all_except_listed"}, "poll_interval_s": 0,
            })
        assert {w for w, _ in caught.value.problems} == {"microsoft.client_secret", "poll_interval_s"}
        assert (tenant.updated_at, tenant_summary(tenant), tenant.ms_client_secret_encrypted) == before
        changed = update_tenant(session, box, tenant, {"microsoft": {"client_secret": "new~value"},
                                                       "rules.Away.dnd": "set"})
        assert changed == ["microsoft.client_secret", "rules.Away.dnd"]
        assert read_secrets(tenant, box).ms_client_secret == "new~value"
        assert read_secrets(tenant, box).starface_password == SECRETS[1]


def test_it_warns_within_30_days_and_after_expiry() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert secret_expiry_warning(now + timedelta(days=31), now) is None
    soon = secret_expiry_warning(now + timedelta(days=20), now) or ""
    assert "expires on 2030-01-21 (in 20 days)" in soon
    assert "expired on 2029-12-31" in (secret_expiry_warning(now - timedelta(days=1), now) or "")
    assert secret_expiry_warning(None, now) is None


def test_the_poll_reads_each_tenants_policy_as_the_orm_would_build_it(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    other = copy.deepcopy(TENANT)
    other["name"], other["slug"] = "Other customer", "other"
    other["rules"] = {"Busy": {"dnd": "set", "chat_text": "Beschäftigt", "chat_symbol": "DO_NOT_DISTURB"}}
    with sessions() as session, session.begin():
        ids = [create_tenant(session, box, validate_config(config)).id
               for config in (copy.deepcopy(TENANT), other)]
    with sessions() as session:
        loaded = load_tenant_policies(session, [*ids, 999_999])  # a gone tenant is left out
        assert sorted(loaded) == ids
        with pytest.raises(InvalidRequestError):  # not loaded: a use would silently cost ORM objects again
            _ = loaded[ids[0]][0].rules
        for tenant_id, (tenant, policy) in loaded.items():
            assert policy == policy_for(session.get(Tenant, tenant_id, populate_existing=True))
            assert tenant.id == tenant_id
        assert loaded[ids[0]][1].rules != loaded[ids[1]][1].rules  # each its own table, none mixed up
