"""The console in a real headless Chromium (Debian's, driven by Playwright) against the running stack: web
app, Celery workers, PostgreSQL, Redis and both simulators over HTTP (embedded/stack.py). Nothing of ours
is mocked. The tests also take the screenshots in docs/screenshots/ that the README shows."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select

from embedded.stack import Stack, StackFactory
from models import Tenant
from models.crypto import generate_key
from models.db import transaction
from simulators.paired import BRIDGE_SECRET, STARFACE_ADMIN_LOGIN, STARFACE_ADMIN_PASSWORD, paired_seeds
from tenants.operators import add_operator
from tests.console.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD

CHROMIUM = os.environ.get("TEAMSCONNECT_CHROMIUM", "/usr/bin/chromium")
# The README's screenshots are refreshed with TEAMSCONNECT_SCREENSHOTS=docs/screenshots; a normal run keeps
# its pictures in a temporary folder, so running the suite leaves the checkout unchanged.
SCREENSHOTS = Path(os.environ.get("TEAMSCONNECT_SCREENSHOTS") or tempfile.mkdtemp(prefix="tc-screens-"))
WRONG_SECRET = "wrong-client-secret-value-typed"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/browser.sh (as root it installs Debian's "
                    "chromium package) or point TEAMSCONNECT_CHROMIUM at one")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def stack(postgres_url: str, pg_sessions: object) -> Iterator[Stack]:
    factory = StackFactory(postgres_url, generate_key())
    for built in factory.build(paired_seeds(5)):
        with transaction(built.runtime.sessions) as session:
            add_operator(session, "alice", ADMIN_PASSWORD, "admin")
            add_operator(session, "victor", VIEWER_PASSWORD, "viewer")
        try:
            yield built
        finally:
            with built.runtime.engine.begin() as connection:
                connection.exec_driver_sql("TRUNCATE operator, admin_change RESTART IDENTITY")


def _context(browser: Browser, stack: Stack, viewport: dict[str, int] = LAPTOP) -> BrowserContext:
    context = browser.new_context(base_url=stack.web_url, viewport=viewport, accept_downloads=True)
    context.set_default_timeout(20_000)
    return context


def _login(context: BrowserContext, username: str, password: str) -> Page:
    page = context.new_page()
    page.goto("/console/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    expect(page.locator(".who")).to_contain_text(username)
    return page


def _shot(page: Page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def test_onboarding_through_the_wizard_links_users_and_a_teams_call_sets_starface_dnd(
    browser: Browser, stack: Stack
) -> None:
    stack.start_worker("w1")
    context = _context(browser, stack)
    page = _login(context, "alice", ADMIN_PASSWORD)
    page.click("text=New tenant")
    page.fill('input[name="name"]', "contoso")
    page.click("text=Next: Microsoft")

    # A wrong client secret: the live check explains the AADSTS code and says the fix.
    page.fill('input[name="directory_id"]', stack.seeds.tenant["id"])
    page.fill('input[name="client_id"]', stack.seeds.app["clientId"])
    page.fill('input[name="client_secret"]', WRONG_SECRET)
    page.click("summary")
    page.fill('input[name="login_base_url"]', stack.microsoft.base_url)
    page.fill('input[name="graph_base_url"]', stack.microsoft.base_url)
    page.click("text=Check and continue")
    check = page.locator("#live-check")
    expect(check).to_contain_text("FAILED")
    expect(check).to_contain_text(re.compile(r"AADSTS\d+"))
    expect(check).to_contain_text("Fix:")
    assert WRONG_SECRET not in page.content()
    _shot(page, "wizard-wrong-secret")

    page.fill('input[name="client_secret"]', stack.seeds.app["secret"])
    page.click("text=Check and continue")
    expect(page.locator("h2")).to_contain_text("STARFACE")
    page.fill('input[name="starface_base_url"]', stack.starface.base_url)
    page.fill('input[name="starface_login_id"]', STARFACE_ADMIN_LOGIN)
    page.fill('input[name="starface_password"]', STARFACE_ADMIN_PASSWORD)
    page.fill('input[name="bridge_secret"]', BRIDGE_SECRET)
    page.click("text=Check and create (disabled)")

    page.click("#sync-directory")
    expect(page.locator("#user-links")).to_contain_text("linked")
    assert page.locator('#user-links .badge.ok').count() == 5
    _shot(page, "wizard-users")
    page.click("#next-step")
    expect(page.locator("#rules")).to_contain_text("In a call")
    page.click("#next-step")
    page.click("#run-dry-run")
    expect(page.locator("#dry-run-result")).to_be_visible()
    _shot(page, "wizard-dry-run")
    page.click("#next-step")
    page.click("#enable-tenant")
    expect(page.locator("#enabled-note")).to_contain_text("Enabled")

    with transaction(stack.runtime.sessions) as session:
        tenant = session.scalars(select(Tenant).where(Tenant.name == "contoso")).one()
        stack.tenant_id = tenant.id
        assert tenant.enabled
    stack.teams(0, "sign_in")
    stack.teams(0, "call_start")
    stack.until(lambda: stack.user(0)["dnd"], what="STARFACE DND set by the Teams call")

    page.goto("/console/")
    expect(page.locator('tr[data-tenant="contoso"]')).to_contain_text("5 linked")
    _shot(page, "tenants")
    page.goto(f"/console/tenants/{stack.tenant_id}/changes")
    expect(page.locator("#admin-changes")).to_contain_text("tenant enabled")
    context.close()


def test_a_rule_changed_in_the_table_is_what_the_next_teams_change_writes(
    browser: Browser, stack: Stack
) -> None:
    tenant_id = stack.add_tenant()
    stack.start_worker("w1")
    context = _context(browser, stack)
    page = _login(context, "alice", ADMIN_PASSWORD)
    page.goto(f"/console/tenants/{tenant_id}")
    page.fill('input[name="chat_text.InACall"]', "Im Teams-Anruf")
    page.select_option('select[name="dnd.InACall"]', "leave")
    page.click("#save-rules")
    expect(page.locator(".saved")).to_contain_text("rules")
    _shot(page, "tenant")

    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    stack.until(lambda: stack.user(1)["chatPresenceMessage"] == "Im Teams-Anruf",
                what="the chat text from the changed rule")
    assert not stack.user(1)["dnd"]  # the rule now leaves DND alone

    # Bad input: named field and fix, nothing saved.
    page.fill('input[name="chat_text.Busy"]', "   ")
    page.click("#save-rules")
    expect(page.locator("#errors")).to_contain_text("rules.Busy.chat_text")
    context.close()

    phone = _context(browser, stack, PHONE)
    page = _login(phone, "alice", ADMIN_PASSWORD)
    _shot(page, "tenants-phone", full_page=False)
    phone.close()


def test_a_viewer_cannot_change_anything_and_a_forged_form_is_refused(browser: Browser, stack: Stack) -> None:
    tenant_id = stack.add_tenant(sync=False)
    context = _context(browser, stack)
    page = _login(context, "victor", VIEWER_PASSWORD)
    page.goto(f"/console/tenants/{tenant_id}")
    expect(page.locator("text=You are signed in as a viewer")).to_be_visible()
    assert page.locator("#save-rules").count() == 0
    assert page.locator('select[name="dnd.InACall"]').is_disabled()
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    as_viewer = page.request.post(f"/console/tenants/{tenant_id}/disable", form={"csrf": csrf or ""})
    assert as_viewer.status == 403
    context.close()

    admin = _context(browser, stack)
    page = _login(admin, "alice", ADMIN_PASSWORD)
    forged = page.request.post(f"/console/tenants/{tenant_id}/disable", form={"confirm": "yes"})
    assert forged.status == 403
    with transaction(stack.runtime.sessions) as session:
        assert session.get_one(Tenant, tenant_id).enabled
    admin.close()


def test_the_log_page_shows_the_tenants_lines_and_the_download_holds_them_without_secrets(
    browser: Browser, stack: Stack
) -> None:
    tenant_id = stack.add_tenant()
    stack.start_worker("w1")
    context = _context(browser, stack)
    page = _login(context, "alice", ADMIN_PASSWORD)
    page.goto(f"/console/tenants/{tenant_id}#auth")
    page.fill('input[name="client_secret"]', WRONG_SECRET)
    page.click("#auth button[type=submit]")
    expect(page.locator(".saved")).to_contain_text("auth")

    def failed_sign_in_logged() -> bool:
        stack.make_due()
        page.goto(f"/console/tenants/{tenant_id}/log")
        return "Microsoft sign-in failed" in page.locator("#log-lines").inner_text()

    stack.until(failed_sign_in_logged, what="the poll's sign-in failure in the tenant's log")
    _shot(page, "log")
    with page.expect_download() as download_info:
        page.click("#download-log")
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert f"tenant {tenant_id}: Microsoft sign-in failed" in text
    for secret in (WRONG_SECRET, stack.seeds.app["secret"], STARFACE_ADMIN_PASSWORD, BRIDGE_SECRET):
        assert secret not in text
    page.goto(f"/console/tenants/{tenant_id}/health")
    expect(page.locator("#health")).to_contain_text("AADSTS")
    _shot(page, "health")
    context.close()
