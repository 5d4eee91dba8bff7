"""`teamsconnect tenant test`: the tenant's real connectors against both simulators over HTTP(S)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant, UserLink
from presence.linking import LinkState
from simulators.microsoft import MicrosoftSimulator
from simulators.microsoft import make_seed as microsoft_seed
from simulators.starface import StarfaceSimulator
from simulators.starface import make_seed as starface_seed
from tests.cli.conftest import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD, assert_no_secret

Run = Callable[..., Result]


@pytest.fixture
def microsoft() -> Iterator[tuple[MicrosoftSimulator, dict[str, Any]]]:
    seed = microsoft_seed(n_users=3, tenants=("contoso",), secret=CLIENT_SECRET)
    with MicrosoftSimulator(seed) as sim:
        yield sim, seed["tenants"][0]


@pytest.fixture
def pbx() -> Iterator[StarfaceSimulator]:
    seed = starface_seed(2, admin_login="0001", admin_password=STARFACE_PASSWORD, bridge_secret=BRIDGE_SECRET)
    with StarfaceSimulator(seed) as sim:
        yield sim


@pytest.fixture
def simulated_tenant(
    microsoft: tuple[MicrosoftSimulator, dict[str, Any]], pbx: StarfaceSimulator, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A tenant definition pointing at both simulators; the CLI trusts the Microsoft simulator's CA."""
    sim, seed_tenant = microsoft
    monkeypatch.setenv("TEAMSCONNECT_CA_BUNDLE", sim.ca_path)
    return {
        "name": "contoso",
        "microsoft": {
            "directory_id": seed_tenant["domain"],
            "client_id": seed_tenant["apps"][0]["clientId"],
            "client_secret": CLIENT_SECRET,
            "login_base_url": sim.base_url,
            "graph_base_url": sim.base_url,
        },
        "starface": {
            "base_url": pbx.base_url,
            "login_id": "0001",
            "password": STARFACE_PASSWORD,
            "bridge": {"secret": BRIDGE_SECRET},
        },
    }


def _add(run: Run, write_json: Callable[..., Path], data: dict[str, Any]) -> None:
    result = run("tenant", "add", "--file", str(write_json(data)))
    assert result.exit_code == 0, result.output


def _link_first_user(db: sessionmaker[Session], entra_id: str) -> None:
    with db() as session, session.begin():
        tenant = session.scalars(select(Tenant)).one()
        session.add(UserLink(tenant_id=tenant.id, starface_account_id=100, login_id="1100",
                             email="user0@contoso.example", entra_object_id=entra_id,
                             state=LinkState.LINKED.value))


def test_it_passes_every_check_for_good_credentials(
    run: Run, write_json: Callable[..., Path], simulated_tenant: dict[str, Any],
    microsoft: tuple[MicrosoftSimulator, dict[str, Any]], db: sessionmaker[Session],
) -> None:
    _add(run, write_json, simulated_tenant)
    _link_first_user(db, microsoft[1]["users"][0]["id"])
    result = run("tenant", "test", "contoso")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "OK      Microsoft sign-in and user read: token issued; app roles:" in out
    assert "Presence.ReadWrite.All" in out
    assert "OK      Microsoft presence read: presence of" in out
    assert "OK      STARFACE REST login and admin rights: logged in as 0001 (account 1)" in out
    assert "OK      STARFACE bridge ping: bridge 'TeamsConnectBridge' answers (contract v1" in out
    assert "FAILED" not in out and "all checks passed for tenant contoso" in out
    assert_no_secret(result.output)


def test_it_explains_a_wrong_client_secret_and_a_wrong_pbx_password(
    run: Run, write_json: Callable[..., Path], simulated_tenant: dict[str, Any]
) -> None:
    wrong_client_secret, wrong_password = "wrong~client-secret-value", "wrong-pbx-password"
    simulated_tenant["microsoft"]["client_secret"] = wrong_client_secret
    simulated_tenant["starface"]["password"] = wrong_password
    _add(run, write_json, simulated_tenant)
    result = run("tenant", "test", "contoso")
    assert result.exit_code == 1
    out = result.stdout
    ms_line = next(line for line in out.splitlines() if line.startswith("FAILED  Microsoft sign-in"))
    assert "AADSTS7000215: The client secret is wrong." in ms_line
    assert "Fix: Copy the secret's *Value* (not its Secret ID)" in ms_line
    assert "SKIPPED Microsoft presence read: needs a working sign-in" in out
    assert ("FAILED  STARFACE REST login and admin rights: STARFACE rejected the login of service "
            "account '0001'") in out
    assert "check the login id and password" in out
    assert "FAILED  STARFACE bridge ping" in out
    assert "3 of 4 checks FAILED" in out
    for secret in (wrong_client_secret, wrong_password, BRIDGE_SECRET):
        assert secret not in result.output


def test_it_skips_the_bridge_of_a_rest_only_tenant_and_names_what_it_lacks(
    run: Run, write_json: Callable[..., Path], simulated_tenant: dict[str, Any]
) -> None:
    simulated_tenant["starface"]["bridge"] = None
    _add(run, write_json, simulated_tenant)
    result = run("tenant", "test", "contoso")
    assert result.exit_code == 0, result.output
    assert "SKIPPED STARFACE bridge: no bridge configured: REST-only tier" in result.stdout
    assert "SKIPPED Microsoft presence read: no linked users yet" in result.stdout


def test_it_reports_a_wrong_bridge_secret(
    run: Run, write_json: Callable[..., Path], simulated_tenant: dict[str, Any]
) -> None:
    simulated_tenant["starface"]["bridge"] = {"secret": "not-the-module-secret"}
    _add(run, write_json, simulated_tenant)
    result = run("tenant", "test", "contoso")
    assert result.exit_code == 1
    assert "FAILED  STARFACE bridge ping: the bridge 'TeamsConnectBridge' rejected the bridge secret" in (
        result.stdout)
    assert "not-the-module-secret" not in result.output


def test_it_syncs_the_directory_and_reports_every_unlinked_user(
    run: Run, write_json: Callable[..., Path], simulated_tenant: dict[str, Any],
    microsoft: tuple[MicrosoftSimulator, dict[str, Any]],
) -> None:
    _add(run, write_json, simulated_tenant)
    result = run("tenant", "sync", "contoso")
    assert result.exit_code == 0, result.output
    # The PBX seed's users have @example.test addresses that no Microsoft 365 user has.
    assert "unmatched        1100     no Microsoft 365 user has user0@example.test" in result.output
    assert "tenant contoso: unmatched: 3" in result.output
    assert_no_secret(result.output)
