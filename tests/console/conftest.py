"""Fixtures for the console: the real app over PostgreSQL, operators made by the operator service, and a
signed-in browser-like client that reads each form's CSRF token from the page it was served with."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from models.crypto import SecretBox
from sync.coordination import LocalCoordination
from sync.runtime import Runtime, set_runtime
from tenants.operators import add_operator
from web.app import create_app
from web.console.auth import LIMITER
from web.settings import WebSettings

ADMIN_PASSWORD = "admin-password-never-shown"
VIEWER_PASSWORD = "viewer-password-never-shown"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def console_runtime(postgres_url: str, postgres_engine: Engine, pg_sessions: sessionmaker[Session],
                    box: SecretBox) -> Iterator[Runtime]:
    settings = Settings(_env_file=None, database_url=postgres_url, public_url="https://tc.example")
    installed = Runtime(settings=settings, engine=postgres_engine, sessions=pg_sessions, box=box,
                        coordination=LocalCoordination())
    set_runtime(installed)
    with pg_sessions.begin() as session:
        add_operator(session, "alice", ADMIN_PASSWORD, "admin")
        add_operator(session, "victor", VIEWER_PASSWORD, "viewer")
    LIMITER._local.clear()
    yield installed
    set_runtime(None)
    with postgres_engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE operator, admin_change RESTART IDENTITY")


class Console:
    """A TestClient that signs in through the login form."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def login(self, username: str, password: str) -> object:
        page = self.client.get("/console/login")
        return self.client.post("/console/login", data={"csrf": csrf_of(page.text), "username": username,
                                                        "password": password, "next": "/console/"},
                                follow_redirects=False)

    def get(self, url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.client.get(url, **kwargs)

    def post_form(self, page_url: str, action: str, data: dict[str, str], *, csrf: bool = True):  # type: ignore[no-untyped-def]
        """Loads ``page_url`` (as a browser would) and posts ``data`` to ``action`` with its CSRF token."""
        page = self.client.get(page_url)
        fields = dict(data)
        if csrf:
            fields["csrf"] = csrf_of(page.text)
        return self.client.post(action, data=fields, follow_redirects=False)


@pytest.fixture
def app_client(console_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(WebSettings(admin_token="admin-token-for-tests-0123456789")),
                    base_url="https://tc.example") as client:
        yield client


@pytest.fixture
def admin(app_client: TestClient) -> Console:
    console = Console(app_client)
    assert console.login("alice", ADMIN_PASSWORD).status_code == 303
    return console


@pytest.fixture
def viewer(console_runtime: Runtime) -> Iterator[Console]:
    with TestClient(create_app(WebSettings()), base_url="https://tc.example") as client:
        console = Console(client)
        assert console.login("victor", VIEWER_PASSWORD).status_code == 303
        yield console
