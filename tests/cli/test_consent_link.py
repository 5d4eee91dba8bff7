"""`teamsconnect tenant consent-link NAME` and how `tenant show` reports the admin consent (issue 16)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import TENANT

APP = "99999999-8888-7777-6666-555555555555"
Run = Callable[..., Any]


def _provider_tenant(write_json: Callable[[Any], Path]) -> Path:
    definition = copy.deepcopy(TENANT)
    definition["microsoft"] = {"app": "provider", "directory_id": TENANT["microsoft"]["directory_id"]}
    return write_json(definition)


def test_it_prints_the_link_and_shows_the_consent_as_not_given_yet(
    run: Run, db_url: str, write_json: Callable[[Any], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAMSCONNECT_PROVIDER_CLIENT_ID", APP)
    monkeypatch.setenv("TEAMSCONNECT_PROVIDER_CLIENT_SECRET", "provider-fallback-secret")
    monkeypatch.setenv("TEAMSCONNECT_PUBLIC_URL", "https://tc.example")
    assert run("tenant", "add", "--file", str(_provider_tenant(write_json))).exit_code == 0
    result = run("tenant", "consent-link", TENANT["name"])
    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert "/v2.0/adminconsent?" in link and f"client_id={APP}" in link
    assert "redirect_uri=https%3A%2F%2Ftc.example%2Fonboarding%2Fconsent" in link
    assert "Global Administrator" in result.stderr and "provider-fallback-secret" not in result.output
    shown = run("tenant", "show", TENANT["name"]).stdout
    assert "admin_consent: not given yet: send the link" in shown and "app: provider" in shown


def test_it_refuses_a_link_for_a_tenant_on_its_own_app_or_without_a_provider_app(
    run: Run, db_url: str, write_json: Callable[[Any], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("tenant", "add", "--file", str(write_json(copy.deepcopy(TENANT)))).exit_code == 0
    own = run("tenant", "consent-link", TENANT["name"])
    assert own.exit_code == 2 and "microsoft.app=provider" in own.stderr
    assert run("tenant", "set", TENANT["name"], "microsoft.app=provider").exit_code == 0
    missing = run("tenant", "consent-link", TENANT["name"])
    assert missing.exit_code == 2 and "TEAMSCONNECT_PROVIDER_CLIENT_ID" in missing.stderr
