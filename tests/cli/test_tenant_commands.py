"""`teamsconnect tenant add/list/show/set/rules/delete` on SQLite and PostgreSQL, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import AppliedState, ChangeLog, StatusRule, Tenant, TenantHealth, UserLink, utcnow
from models.crypto import SecretBox
from models.secrets import read_secrets
from tests.cli.conftest import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD, assert_no_secret
from tests.support.factories import make_user_links

Run = Callable[..., Result]


def _add(run: Run, write_json: Callable[..., Path], data: dict[str, Any]) -> Result:
    result = run("tenant", "add", "--file", str(write_json(data)))
    assert result.exit_code == 0, result.output
    return result


def test_it_adds_a_tenant_from_a_file_and_stores_secrets_encrypted(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session],
    cli_box: SecretBox,
) -> None:
    result = _add(run, write_json, tenant_data)
    assert "added tenant contoso (slug contoso, id 1, tier bridge)" in result.stdout
    assert_no_secret(result.output)
    with db() as session:
        tenant = session.scalars(select(Tenant)).one()
        assert CLIENT_SECRET not in tenant.ms_client_secret_encrypted
        secrets = read_secrets(tenant, cli_box)
        assert (secrets.ms_client_secret, secrets.starface_password, secrets.bridge_secret) == (
            CLIENT_SECRET, STARFACE_PASSWORD, BRIDGE_SECRET)
        rules = {r.category: (r.dnd_action, r.chat_text) for r in tenant.rules}
        assert len(rules) == 10 and rules["InACall"] == ("set", "Im Teams-Gespräch")
        assert rules["Available"] == ("clear", None)
        assert session.get(TenantHealth, tenant.id) is not None
        assert (tenant.set_telephony, tenant.selection_mode, tenant.starface_group_id) == (
            True, "group_plus_listed", 7)


def test_it_adds_a_tenant_from_flags_with_secrets_from_files(
    run: Run, tmp_path: Path, db: sessionmaker[Session], cli_box: SecretBox
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(CLIENT_SECRET + "\n")
    result = run(
        "tenant", "add", "--name", "fabrikam", "--directory-id", "fabrikam.onmicrosoft.com",
        "--client-id", "22222222-2222-2222-2222-222222222222", "--client-secret", f"@{secret_file}",
        "--starface-url", "https://pbx.fabrikam.example", "--starface-login", "0001",
        "--starface-password", "-", "--login-id", "1001", "--login-id", "1002", "--disabled",
        input=STARFACE_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "tier REST-only" in result.stdout
    with db() as session:
        tenant = session.scalars(select(Tenant)).one()
        assert read_secrets(tenant, cli_box).ms_client_secret == CLIENT_SECRET  # newline dropped
        assert read_secrets(tenant, cli_box).starface_password == STARFACE_PASSWORD  # from stdin
        assert (tenant.enabled, tenant.login_ids, tenant.has_bridge) == (False, ["1001", "1002"], False)


def test_it_reports_every_bad_field_without_a_traceback_or_a_secret(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session]
) -> None:
    tenant_data["microsoft"]["client_id"] = "not-a-guid"
    tenant_data["starface"]["base_url"] = "http://pbx.contoso.example"
    tenant_data["selection"] = {"mode": "group_plus_listed"}
    tenant_data["options"]["set_telefony"] = True
    tenant_data["poll_interval_s"] = 0
    result = run("tenant", "add", "--file", str(write_json(tenant_data)))
    assert result.exit_code == 2
    errors = result.stderr
    assert "error: microsoft.client_id: must be the app's Application (client) ID" in errors
    assert "error: starface.base_url: must use https://" in errors
    assert "error: selection: starface_group is required in mode group_plus_listed" in errors
    assert "error: options.set_telefony: is not a known setting" in errors
    assert "error: poll_interval_s:" in errors
    assert "Traceback" not in result.output
    assert_no_secret(result.output)
    with db() as session:
        assert session.scalars(select(Tenant)).first() is None


def test_it_rejects_unreadable_json_and_a_duplicate_name(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], tmp_path: Path, db_url: str
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    result = run("tenant", "add", "--file", str(broken))
    assert result.exit_code == 2 and "is not valid JSON" in result.stderr
    _add(run, write_json, tenant_data)
    again = run("tenant", "add", "--file", str(write_json(tenant_data)))
    assert again.exit_code == 2
    assert "name: a tenant named 'contoso' exists already" in again.stderr


def test_it_lists_tenants_with_tier_linked_users_and_health(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session]
) -> None:
    _add(run, write_json, tenant_data)
    rest_only = {**tenant_data, "name": "fabrikam",
                 "starface": {**tenant_data["starface"], "bridge": None}}
    _add(run, write_json, rest_only)
    with db() as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.name == "contoso")).one()
        make_user_links(session, tenant, 3)
        tenant.health.last_error_code = "AADSTS7000215"
        tenant.health.last_error_message = "The client secret is wrong."
        tenant.health.last_error_at = utcnow()
    result = run("tenant", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    contoso = next(line for line in lines if "contoso" in line)
    fabrikam = next(line for line in lines if "fabrikam" in line)
    assert "bridge" in contoso and " 3 " in contoso and "AADSTS7000215" in contoso
    assert "REST-only" in fabrikam and " 0 " in fabrikam


def test_it_shows_config_without_secrets_and_warns_about_an_expiring_secret(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db_url: str
) -> None:
    soon = datetime.now(UTC) + timedelta(days=10)
    tenant_data["microsoft"]["secret_expires_at"] = soon.date().isoformat()
    tenant_data["starface"]["bridge"] = None
    _add(run, write_json, tenant_data)
    result = run("tenant", "show", "contoso")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_no_secret(result.output)
    assert "client_secret: set" in out and "password: set" in out
    assert "tier REST-only" in out
    assert "chat-status text in STARFACE" in out  # a feature the REST-only tier lacks
    assert "warning: the Microsoft client secret expires on" in out
    assert "tenant set contoso microsoft.client_secret" in out
    as_json = json.loads(run("tenant", "show", "1", "--json").stdout)
    assert as_json["microsoft"]["client_secret"] == "set"
    assert as_json["user_links"]["linked"] == 0 and as_json["missing_features"]


def test_it_changes_settings_and_leaves_the_tenant_untouched_on_a_bad_value(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session],
    cli_box: SecretBox,
) -> None:
    _add(run, write_json, tenant_data)
    ok = run("tenant", "set", "contoso", "options.set_dnd=false", "selection.login_ids=1001,1002",
             "starface.password", input="new-pbx-password\n")
    assert ok.exit_code == 0, ok.output
    assert "options.set_dnd" in ok.stdout and "starface.password" in ok.stdout
    assert "new-pbx-password" not in ok.output
    bad = run("tenant", "set", "contoso", "options.set_chat_text=false", "microsoft.client_id=nope")
    assert bad.exit_code == 2 and "microsoft.client_id:" in bad.stderr
    with db() as session:
        tenant = session.scalars(select(Tenant)).one()
        assert tenant.set_dnd is False and tenant.login_ids == ["1001", "1002"]
        assert tenant.set_chat_text is True  # the rejected change left nothing behind
        secrets = read_secrets(tenant, cli_box)
        assert secrets.starface_password == "new-pbx-password"
        assert secrets.ms_client_secret == CLIENT_SECRET and secrets.bridge_secret == BRIDGE_SECRET


def test_it_removes_the_bridge_and_reports_unknown_keys(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session]
) -> None:
    _add(run, write_json, tenant_data)
    unknown = run("tenant", "set", "contoso", "options.colour=blue")
    assert unknown.exit_code == 2 and "options.colour: is not a known setting" in unknown.stderr
    removed = run("tenant", "set", "contoso", "starface.bridge=null")
    assert removed.exit_code == 0, removed.output
    with db() as session:
        tenant = session.scalars(select(Tenant)).one()
        assert not tenant.has_bridge
        assert (tenant.bridge_instance, tenant.bridge_secret_encrypted) == (None, None)
    no_secret = run("tenant", "set", "contoso", "starface.bridge.instance=Bridge2")
    assert no_secret.exit_code == 2 and "starface.bridge.secret: is required" in no_secret.stderr


def test_it_shows_and_changes_the_rule_table(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session]
) -> None:
    _add(run, write_json, tenant_data)
    table = run("tenant", "rules", "contoso")
    assert table.exit_code == 0
    assert "InACall" in table.stdout and "Im Teams-Gespräch" in table.stdout and "changed" in table.stdout
    changed = run("tenant", "rules", "contoso", "busy", "--dnd", "set", "--text", "Beschäftigt")
    assert changed.exit_code == 0, changed.output
    cleared = run("tenant", "rules", "contoso", "OutOfOffice", "--no-text")
    assert cleared.exit_code == 0, cleared.output
    bad = run("tenant", "rules", "contoso", "Sleeping", "--dnd", "set")
    assert bad.exit_code == 2 and "unknown Teams status 'Sleeping'" in bad.stderr
    bad_dnd = run("tenant", "rules", "contoso", "Away", "--dnd", "maybe")
    assert bad_dnd.exit_code == 2 and "rules.Away.dnd:" in bad_dnd.stderr
    with db() as session:
        rows = {r.category: (r.dnd_action, r.chat_text) for r in session.scalars(select(StatusRule))}
    assert rows["Busy"] == ("set", "Beschäftigt")
    assert rows["OutOfOffice"] == ("leave", None)
    assert rows["Away"] == ("leave", None)


def test_it_deletes_a_tenant_with_its_data_only_when_confirmed(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session]
) -> None:
    _add(run, write_json, tenant_data)
    _add(run, write_json, {**tenant_data, "name": "fabrikam"})
    with db() as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.name == "contoso")).one()
        links = make_user_links(session, tenant, 2)
        session.add(ChangeLog(tenant_id=tenant.id, user_link_id=links[0].id, target="starface", cause="test"))
    refused = run("tenant", "delete", "contoso", input="n\n")
    assert refused.exit_code == 1
    deleted = run("tenant", "delete", "contoso", "--yes")
    assert deleted.exit_code == 0 and "deleted tenant contoso" in deleted.stdout
    with db() as session:
        assert [t.name for t in session.scalars(select(Tenant))] == ["fabrikam"]
        assert session.scalars(select(UserLink)).first() is None
        assert session.scalars(select(ChangeLog)).first() is None
        assert len(session.scalars(select(StatusRule)).all()) == 10  # fabrikam's rules are untouched
    missing = run("tenant", "show", "contoso")
    assert missing.exit_code == 2 and "no tenant with the name, slug or id 'contoso'" in missing.stderr


def test_it_says_to_run_db_upgrade_on_an_empty_database(
    run: Run, cli_env: None, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEAMSCONNECT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = run("tenant", "list")
    assert result.exit_code == 2
    assert "run `teamsconnect db upgrade`" in result.stderr and "Traceback" not in result.output


def test_it_refuses_to_delete_a_tenant_that_still_holds_our_outputs(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session]
) -> None:
    _add(run, write_json, tenant_data)
    with db() as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.name == "contoso")).one()
        (link,) = make_user_links(session, tenant, 1)
        session.add(AppliedState(tenant_id=tenant.id, user_link_id=link.id, target="starface",
                                 fields={"dnd_ours": True}, owned=["dnd"]))
    refused = run("tenant", "delete", "contoso", "--yes")
    assert refused.exit_code == 2
    assert "still holds a DND" in refused.stderr and "enabled=false" in refused.stderr
    forced = run("tenant", "delete", "contoso", "--yes", "--force")
    assert forced.exit_code == 0, forced.output
