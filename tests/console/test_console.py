"""The console over the real app and PostgreSQL: sign-in, rate limiting, CSRF, roles, the tenants list, the
tenant page's sections with their validation, the record of changes, and the tenant's log."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import AdminChange, StatusRule, Tenant, UserLink
from models.crypto import SecretBox
from presence.linking import LinkState
from sync.runtime import Runtime
from tests.console.conftest import ADMIN_PASSWORD, Console, csrf_of
from tests.support.factories import CLIENT_SECRET, STARFACE_PASSWORD, make_tenant, make_user_links
from workers.tenant_log import TenantLogHandler, store_for


def _tenant(pg_sessions: sessionmaker[Session], box: SecretBox, name: str = "contoso", **kw: object) -> int:
    with pg_sessions.begin() as session:
        return make_tenant(session, box, name, **kw).id


def _rule(pg_sessions: sessionmaker[Session], tenant_id: int, category: str) -> tuple[str, str | None]:
    with pg_sessions() as session:
        row = session.scalars(select(StatusRule).where(StatusRule.tenant_id == tenant_id,
                                                       StatusRule.category == category)).one()
        return row.dnd_action, row.chat_text


def _rules_form(category: str, dnd: str, chat: str) -> dict[str, str]:
    from presence.policy import overlay_rules

    form = {}
    for cat, rule in overlay_rules({}).items():
        form[f"dnd.{cat.value}"] = rule.dnd.value
        form[f"chat_text.{cat.value}"] = rule.chat_text or ""
    form[f"dnd.{category}"], form[f"chat_text.{category}"] = dnd, chat
    return form


# --- sign-in --------------------------------------------------------------------------------------------


def test_pages_need_a_signed_in_operator(app_client) -> None:  # type: ignore[no-untyped-def]
    response = app_client.get("/console/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login")


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_name(app_client) -> None:  # type: ignore[no-untyped-def]
    console = Console(app_client)
    for _ in range(5):
        assert console.login("alice", "wrong-password-here").status_code == 401
    locked = console.login("alice", ADMIN_PASSWORD)
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text


def test_the_session_cookie_is_http_only_and_cannot_be_forged(app_client) -> None:  # type: ignore[no-untyped-def]
    console = Console(app_client)
    response = console.login("alice", ADMIN_PASSWORD)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" in cookie
    app_client.cookies.set("tc_console", "gAAAAforged", domain="tc.example", path="/console")
    assert app_client.get("/console/", follow_redirects=False).status_code == 303


# --- tenants list -----------------------------------------------------------------------------------------


def test_the_tenants_list_shows_health_tier_and_link_counts_and_searches(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    contoso = _tenant(pg_sessions, box, "contoso")
    _tenant(pg_sessions, box, "fabrikam", bridge=False)
    with pg_sessions.begin() as session:
        tenant = session.get_one(Tenant, contoso)
        make_user_links(session, tenant, 3)
        session.add(UserLink(tenant_id=contoso, starface_account_id=900, login_id="1900", display_name="X",
                             state=LinkState.UNMATCHED.value, reason="no Entra user has this e-mail"))
    page = admin.get("/console/").text
    assert "contoso" in page and "fabrikam" in page
    assert "3 linked" in page and "1 unmatched" in page and "never polled" in page
    assert "REST + bridge" in page and "REST only" in page
    found = admin.get("/console/?q=fabri").text
    assert "fabrikam" in found and 'data-tenant="contoso"' not in found


# --- CSRF and roles --------------------------------------------------------------------------------------


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    forged = admin.post_form(url, f"{url}/rules", _rules_form("InACall", "leave", "forged"), csrf=False)
    assert forged.status_code == 403
    wrong = admin.client.post(f"{url}/rules", data={**_rules_form("InACall", "leave", "forged"),
                                                    "csrf": "not-the-token"})
    assert wrong.status_code == 403
    assert _rule(pg_sessions, tenant_id, "InACall") == ("set", "On a call in MS Teams")


def test_a_viewer_sees_everything_and_can_change_nothing(
    viewer: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    page = viewer.get(url).text
    assert "You are signed in as a viewer" in page and 'id="save-rules"' not in page
    for action, data in ((f"{url}/rules", _rules_form("InACall", "leave", "viewer")),
                         (f"{url}/disable", {}), (f"{url}/general", {"name": "renamed"}),
                         (f"{url}/test", {}), ("/console/new/name", {"name": "sneaky"})):
        assert viewer.post_form(url, action, data).status_code == 403, action
    assert viewer.get("/console/new").status_code == 403
    assert _rule(pg_sessions, tenant_id, "InACall") == ("set", "On a call in MS Teams")
    with pg_sessions() as session:
        assert session.get_one(Tenant, tenant_id).enabled


# --- tenant page ------------------------------------------------------------------------------------------


def test_changing_a_rule_is_saved_and_recorded_with_who_and_what(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    saved = admin.post_form(url, f"{url}/rules", _rules_form("InAMeeting", "set", "Im Meeting"))
    assert saved.status_code == 303
    assert _rule(pg_sessions, tenant_id, "InAMeeting") == ("set", "Im Meeting")
    page = admin.get(url).text
    assert "console:alice" in page and "status table changed" in page and "Im Meeting" in page
    admin.get(f"/console/lang/de?next={url}")
    german = admin.get(url).text
    assert "Nicht stören" in german and "Chat-Status" in german


def test_a_bad_rule_names_the_field_and_the_fix_and_saves_nothing(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    form = _rules_form("Busy", "set", "x" * 300)
    form["chat_text.Away"] = "Gleich zurück"  # a good change in the same form must not be saved alone
    refused = admin.post_form(url, f"{url}/rules", form)
    assert refused.status_code == 400
    assert "rules.Busy.chat_text" in refused.text and "Nothing was saved" in refused.text
    assert _rule(pg_sessions, tenant_id, "Away")[1] != "Gleich zurück"
    with pg_sessions() as session:
        assert session.scalars(select(AdminChange)).all() == []


def test_bad_general_and_selection_input_names_the_field_and_the_fix(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    general = admin.post_form(url, f"{url}/general", {"name": "contoso", "log_level": "INFO",
                                                      "poll_interval_s": "often", "enabled": "on",
                                                      "teams_presence_mode": "busy_in_a_call"})
    assert general.status_code == 400
    assert "poll_interval_s" in general.text and "enter a number of seconds" in general.text
    selection = admin.post_form(url, f"{url}/selection", {"mode": "group_plus_listed",
                                                          "starface_group_id": "",
                                                          "login_ids": ""})
    assert selection.status_code == 400 and "starface_group is required" in selection.text
    with pg_sessions() as session:
        tenant = session.get_one(Tenant, tenant_id)
        assert tenant.poll_interval_s == 1.0 and tenant.selection_mode == "all_except_listed"


def test_secrets_are_write_only_and_recorded_only_as_replaced(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    page = admin.get(url).text
    assert CLIENT_SECRET not in page and STARFACE_PASSWORD not in page and ">set<" in page
    new_secret = "a-brand-new-client-secret-value"
    with pg_sessions() as session:
        tenant = session.get_one(Tenant, tenant_id)
        form = {"directory_id": tenant.ms_directory_id, "client_id": tenant.ms_client_id,
                "starface_base_url": tenant.starface_base_url, "starface_login_id": tenant.starface_login_id,
                "bridge_enabled": "on", "bridge_instance": "TeamsConnectBridge", "client_secret": new_secret}
    assert admin.post_form(url, f"{url}/auth", form).status_code == 303
    with pg_sessions() as session:
        change = session.scalars(select(AdminChange)).one()
        assert change.details["fields"] == ["microsoft.client_secret"]
        assert new_secret not in str(change.details) and "replaced" in str(change.details)
        from models.secrets import read_secrets

        assert read_secrets(session.get_one(Tenant, tenant_id), box).ms_client_secret == new_secret
    after = admin.get(url).text + admin.get(f"{url}/changes").text
    assert new_secret not in after and "microsoft.client_secret: replaced" in after


def test_the_changes_page_filters_and_pages(
    admin: Console, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    url = f"/console/tenants/{tenant_id}"
    for n in range(27):
        admin.post_form(url, f"{url}/general", {"name": "contoso", "log_level": "INFO", "enabled": "on",
                                                "poll_interval_s": str(2 + n), "description": f"d{n}",
                                                "teams_presence_mode": "busy_in_a_call"})
    first = admin.get(f"{url}/changes").text
    assert "settings changed" in first and "page 1 of 2" in first
    assert "page 2 of 2" in admin.get(f"{url}/changes?page=2").text
    filtered = admin.get(f"{url}/changes?q=d26").text
    assert "page 1 of 1" in filtered and "&#39;d26&#39;" in filtered


def test_the_log_page_shows_the_tenants_own_lines_newest_first_and_downloads_them(
    admin: Console, console_runtime: Runtime, pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    tenant_id = _tenant(pg_sessions, box)
    other = _tenant(pg_sessions, box, "other")
    store = store_for(console_runtime.settings)
    store.clear(tenant_id)
    handler = TenantLogHandler(store)
    log = logging.getLogger("sync.poll")
    log.addHandler(handler)
    try:
        log.warning("tenant %s: first line", tenant_id)
        log.error("tenant %s: second line about bo@contoso.example", tenant_id)
        log.error("tenant %s: a line of another tenant", other)
    finally:
        log.removeHandler(handler)
    page = admin.get(f"/console/tenants/{tenant_id}/log").text
    assert page.index("second line") < page.index("first line") and "another tenant" not in page
    download = admin.get(f"/console/tenants/{tenant_id}/log.txt")
    assert "attachment" in download.headers["content-disposition"]
    assert "first line" in download.text and "bo@contoso.example" not in download.text
    store.clear(tenant_id)
    store.clear(other)


def test_logging_out_ends_the_session(admin: Console) -> None:
    page = admin.get("/console/").text
    admin.client.post("/console/logout", data={"csrf": csrf_of(page)})
    assert admin.get("/console/", follow_redirects=False).status_code == 303
