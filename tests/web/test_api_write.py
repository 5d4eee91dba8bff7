"""The admin write API over the real app and PostgreSQL: every change goes through the tenant service, is
recorded (actor "api", never a secret), and every refusal names the field and the fix with nothing saved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from models import AdminChange, Tenant
from models.crypto import SecretBox
from models.secrets import read_secrets
from tests.support.factories import CLIENT_SECRET, tenant_definition
from tests.web.conftest import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def api(client: TestClient, postgres_engine: Engine) -> Iterator[TestClient]:
    client.headers.update(AUTH)
    yield client
    with postgres_engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE admin_change RESTART IDENTITY")


def _create(api: TestClient, name: str = "contoso", **extra: Any) -> int:
    response = api.post("/api/tenants", json={**tenant_definition(name), **extra})
    assert response.status_code == 201, response.text
    return response.json()["tenant"]["id"]


def _records(pg_sessions: sessionmaker[Session]) -> list[AdminChange]:
    with pg_sessions() as session:
        return list(session.scalars(select(AdminChange).order_by(AdminChange.id)))


def test_it_needs_the_bearer_token(client: TestClient) -> None:
    assert client.post("/api/tenants", json=tenant_definition()).status_code == 401


def test_creating_a_tenant_stores_it_records_it_and_never_returns_a_secret(
    api: TestClient, pg_sessions: sessionmaker[Session]
) -> None:
    response = api.post("/api/tenants", json=tenant_definition())
    assert response.status_code == 201
    assert CLIENT_SECRET not in response.text
    assert response.json()["tenant"]["config"]["microsoft"]["client_secret_set"] is True
    (record,) = _records(pg_sessions)
    assert record.actor == "api" and record.action == "tenant created"
    assert CLIENT_SECRET not in str(record.details)
    assert record.details["after"]["microsoft.client_secret"] == "replaced"


def test_bad_input_names_the_field_and_the_fix_and_stores_nothing(
    api: TestClient, pg_sessions: sessionmaker[Session]
) -> None:
    bad = tenant_definition()
    bad["microsoft"]["client_id"] = "not-a-guid"
    response = api.post("/api/tenants", json=bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "microsoft.client_id" and "GUID" in error["message"] and error["fix"]
    for body, field in ((b"{not json", "body"), (b"[1, 2]", "body")):
        refused = api.post("/api/tenants", content=body, headers={"Content-Type": "application/json"})
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field
    with pg_sessions() as session:
        assert session.scalars(select(Tenant)).all() == []
    assert _records(pg_sessions) == []


def test_update_rules_selection_and_enable_go_through_the_service_and_are_recorded(
    api: TestClient, pg_sessions: sessionmaker[Session]
) -> None:
    tenant_id = _create(api)
    patched = api.patch(f"/api/tenants/{tenant_id}",
                        json={"options.set_chat_text": False, "poll_interval_s": 5})
    assert patched.json()["changed"] == ["options.set_chat_text", "poll_interval_s"]
    rule = api.put(f"/api/tenants/{tenant_id}/rules/inacall", json={"dnd": "leave", "chat_text": "Im Anruf"})
    assert rule.status_code == 200
    rules = {r["category"]: r for r in rule.json()["tenant"]["config"]["rules"]}
    assert rules["InACall"] == {"category": "InACall", "dnd_action": "leave", "chat_text": "Im Anruf"}
    selection = api.put(f"/api/tenants/{tenant_id}/selection",
                        json={"mode": "group_plus_listed", "starface_group_id": 3, "login_ids": ["1001"]})
    assert selection.json()["changed"] == ["selection.login_ids", "selection.mode",
                                           "selection.starface_group_id"]
    assert api.post(f"/api/tenants/{tenant_id}/disable").json()["changed"] == ["enabled"]
    actions = [r.action for r in _records(pg_sessions)]
    assert actions == ["tenant created", "settings changed", "status table changed", "user selection changed",
                       "tenant disabled"]
    audit = api.get(f"/api/tenants/{tenant_id}/audit").json()
    assert audit["total"] == 5 and audit["changes"][0]["action"] == "tenant disabled"


def test_refusals_of_rules_and_selection_save_nothing(
    api: TestClient, pg_sessions: sessionmaker[Session]
) -> None:
    tenant_id = _create(api)
    unknown = api.put(f"/api/tenants/{tenant_id}/rules/lunch", json={"dnd": "set"})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "category"
    assert "InACall" in unknown.json()["error"]["fix"]
    mixed = api.put(f"/api/tenants/{tenant_id}/rules", json={"Away": {"dnd": "set", "chat_text": "ok"},
                                                            "Busy": {"dnd": "sometimes"}})
    assert mixed.status_code == 400 and mixed.json()["error"]["field"] == "rules.Busy.dnd"
    group = api.put(f"/api/tenants/{tenant_id}/selection", json={"mode": "group_plus_listed"})
    assert group.status_code == 400 and group.json()["error"]["field"] == "selection"
    assert "starface_group is required" in group.json()["error"]["message"]
    with pg_sessions() as session:
        tenant = session.get_one(Tenant, tenant_id)
        assert {r.category: r.chat_text for r in tenant.rules}["Away"] != "ok"
        assert tenant.selection_mode == "all_except_listed"
    assert [r.action for r in _records(pg_sessions)] == ["tenant created"]
    assert api.patch("/api/tenants/999", json={}).json()["error"]["field"] == "tenant_id"


def test_secrets_are_write_only(api: TestClient, pg_sessions: sessionmaker[Session], box: SecretBox) -> None:
    tenant_id = _create(api)
    new = "the-replaced-client-secret-value"
    response = api.put(f"/api/tenants/{tenant_id}/secrets", json={"microsoft.client_secret": new})
    assert response.json()["changed"] == ["microsoft.client_secret"] and new not in response.text
    assert api.put(f"/api/tenants/{tenant_id}/secrets", json={"name": "x"}).json()["error"]["field"] == "name"
    with pg_sessions() as session:
        assert read_secrets(session.get_one(Tenant, tenant_id), box).ms_client_secret == new
    assert all(new not in str(r.details) for r in _records(pg_sessions))
    assert new not in api.get(f"/api/tenants/{tenant_id}/audit").text


def test_delete_is_recorded_and_the_record_outlives_the_tenant(
    api: TestClient, pg_sessions: sessionmaker[Session]
) -> None:
    tenant_id = _create(api)
    assert api.delete(f"/api/tenants/{tenant_id}").json() == {"deleted": tenant_id}
    assert [(r.action, r.tenant_name) for r in _records(pg_sessions)][-1] == ("tenant deleted", "contoso")


def test_the_openapi_document_lists_the_write_routes(api: TestClient) -> None:
    paths = api.get("/api/openapi.json").json()["paths"]
    for path in ("/api/tenants", "/api/tenants/{tenant_id}", "/api/tenants/{tenant_id}/rules/{category}",
                 "/api/tenants/{tenant_id}/secrets", "/api/tenants/{tenant_id}/dry-run",
                 "/api/tenants/{tenant_id}/logs", "/api/tenants/{tenant_id}/audit"):
        assert path in paths, path
    assert "requestBody" in paths["/api/tenants"]["post"]
