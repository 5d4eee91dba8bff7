"""The read-only admin API and /healthz: token, tenant isolation, no secrets and no e-mail addresses."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import SettingsError
from sync.runtime import Runtime
from tests.support.factories import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD
from tests.web.conftest import ADMIN_TOKEN, PUBLIC_URL, SECRET_A, SECRET_B, SEEDED_EMAILS, Tenants
from web.app import create_app
from web.settings import WebSettings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRETS = (SECRET_A, SECRET_B, BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD, ADMIN_TOKEN)


def assert_nothing_private(text: str) -> None:
    for private in (*SECRETS, *SEEDED_EMAILS, "@alpha.example", "@beta.example", "encrypted"):
        assert private not in text, private


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN},
                                     {"Authorization": f"Basic {ADMIN_TOKEN}"}])
def test_it_refuses_the_api_without_the_right_bearer_token(
    client: TestClient, tenants: Tenants, headers: dict[str, str]
) -> None:
    for path in ("/api/tenants", f"/api/tenants/{tenants.alpha}", f"/api/tenants/{tenants.alpha}/changes"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert_nothing_private(response.text)


def test_it_switches_the_api_off_without_a_configured_token(runtime: Runtime, tenants: Tenants) -> None:
    with TestClient(create_app(WebSettings(admin_token=""))) as client:
        response = client.get("/api/tenants", headers=AUTH)

    assert response.status_code == 503
    assert response.json() == {"error": "admin API disabled: set TEAMSCONNECT_ADMIN_TOKEN"}


def test_it_reads_the_token_from_the_environment(
    runtime: Runtime, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = "from-the-env-" + "x" * 20
    monkeypatch.setenv("TEAMSCONNECT_ADMIN_TOKEN", from_env)
    with TestClient(create_app()) as client:
        allowed = client.get("/api/tenants", headers={"Authorization": f"Bearer {from_env}"})
        refused = client.get("/api/tenants", headers=AUTH)

    assert (allowed.status_code, refused.status_code) == (200, 401)
    assert from_env not in repr(WebSettings())


def test_it_lists_tenants_with_tier_and_health(client: TestClient, seeded: Tenants) -> None:
    response = client.get("/api/tenants", headers=AUTH)

    assert response.status_code == 200
    by_name = {tenant["name"]: tenant for tenant in response.json()["tenants"]}
    assert [by_name[name]["id"] for name in ("alpha", "beta", "gamma")] == [
        seeded.alpha, seeded.beta, seeded.rest_only
    ]
    assert [by_name[name]["tier"] for name in ("alpha", "beta", "gamma")] == ["bridge", "bridge", "rest"]
    assert [by_name[name]["health"]["status"] for name in ("alpha", "beta", "gamma")] == [
        "ok", "error", "never_polled"
    ]
    assert by_name["beta"]["health"]["throttled"] is True
    assert by_name["beta"]["health"]["last_error_code"] == "AADSTS7000215"
    assert by_name["beta"]["health"]["last_error_message"] == "invalid client secret of the app of <e-mail>"
    assert_nothing_private(response.text)


def test_it_shows_a_tenant_with_config_links_and_problem_users(client: TestClient, seeded: Tenants) -> None:
    response = client.get(f"/api/tenants/{seeded.alpha}", headers=AUTH)

    assert response.status_code == 200
    tenant = response.json()
    assert tenant["name"] == "alpha"
    assert tenant["config"]["starface"]["bridge_secret_set"] is True
    assert tenant["config"]["microsoft"]["client_secret_set"] is True
    assert tenant["config"]["starface"]["webhook_url"] == f"{PUBLIC_URL}/hooks/starface/{seeded.alpha}"
    assert tenant["health"]["polls_ok"] == 7
    assert tenant["links"]["counts"] == {
        "linked": 3, "unmatched": 1, "duplicate_email": 1, "no_email": 1, "excluded": 0
    }
    assert tenant["links"]["problem_users_total"] == 3
    problems = {user["login_id"]: user for user in tenant["links"]["problem_users"]}
    assert problems["1500"]["state"] == "duplicate_email"
    assert problems["1500"]["reason"] == "<e-mail> is the mail of two Entra users"
    assert problems["1501"]["reason"] == "no Entra user has the e-mail <<e-mail>>"
    assert problems["1502"]["state"] == "no_email"
    assert_nothing_private(response.text)


@pytest.mark.parametrize("offset", [100, 2**31, 2**63, 10**30])
def test_it_answers_404_for_an_unknown_tenant(client: TestClient, tenants: Tenants, offset: int) -> None:
    """2**31 and beyond used to reach PostgreSQL as an INTEGER out of range: a 500."""
    unknown = tenants.beta + offset if offset == 100 else offset
    for path in (f"/api/tenants/{unknown}", f"/api/tenants/{unknown}/changes"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json() == {"error": f"no tenant with id {unknown}"}


@pytest.mark.parametrize("ref", ["-1", "0", "abc", "1e3", "%00", "9" * 5000, "١"])
def test_it_answers_4xx_for_a_tenant_id_that_is_no_id(client: TestClient, tenants: Tenants, ref: str) -> None:
    for path in (f"/api/tenants/{ref}", f"/api/tenants/{ref}/changes"):
        response = client.get(path, headers=AUTH)
        assert response.status_code in (400, 404), path
        assert "error" in response.json()


@pytest.mark.parametrize("token", ["x", "short-token", "a" * 31, " " * 10 + "b" * 31])
@pytest.mark.parametrize("variable", ["TEAMSCONNECT_ADMIN_TOKEN", "TEAMSCONNECT_METRICS_TOKEN"])
def test_it_refuses_to_start_with_a_short_token(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, token: str, variable: str
) -> None:
    """A one-character admin token used to be accepted."""
    monkeypatch.setenv(variable, token)
    with pytest.raises(SettingsError) as refused:
        create_app()

    message = str(refused.value)
    assert variable in message and "at least 32" in message and "secrets.token_urlsafe" in message
    assert token.strip() not in message


def test_the_web_command_refuses_a_short_admin_token_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli.main import app as cli

    monkeypatch.setenv("TEAMSCONNECT_ADMIN_TOKEN", "tiny")
    result = CliRunner().invoke(cli, ["web", "--host", "256.0.0.1", "--port", "1"])  # never serves

    assert result.exit_code == 2
    assert "TEAMSCONNECT_ADMIN_TOKEN" in result.output and "Traceback" not in result.output


def test_it_lists_a_tenants_changes_newest_first_with_latency(client: TestClient, seeded: Tenants) -> None:
    response = client.get(f"/api/tenants/{seeded.alpha}/changes", headers=AUTH)

    assert response.status_code == 200
    changes = response.json()["changes"]
    assert [change["cause"] for change in changes] == [
        "bridge event: RINGING", "teams: Available/Available", "teams: Busy/InACall"
    ]
    assert [change["latency_ms"] for change in changes] == [250.0, 250.0, 250.0]
    assert {change["login_id"] for change in changes} == {"1100"}
    assert_nothing_private(response.text)


def test_it_limits_the_changes_and_keeps_tenants_apart(client: TestClient, seeded: Tenants) -> None:
    one = client.get(f"/api/tenants/{seeded.alpha}/changes?limit=1", headers=AUTH).json()["changes"]
    beta = client.get(f"/api/tenants/{seeded.beta}/changes", headers=AUTH)

    assert [change["cause"] for change in one] == ["bridge event: RINGING"]
    assert [change["cause"] for change in beta.json()["changes"]] == ["STARFACE call of <e-mail>"]
    assert beta.json()["changes"][0]["latency_ms"] is None


@pytest.mark.parametrize("limit", ["0", "501", "many"])
def test_it_answers_400_for_a_bad_limit(client: TestClient, seeded: Tenants, limit: str) -> None:
    response = client.get(f"/api/tenants/{seeded.alpha}/changes?limit={limit}", headers=AUTH)

    assert response.status_code == 400
    assert "limit" in response.json()["error"]


def test_it_reports_health_while_the_database_answers(client: TestClient) -> None:
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})


def test_it_answers_503_when_the_database_is_unreachable(
    runtime_without_database: Runtime,
) -> None:
    with TestClient(create_app(WebSettings(admin_token=ADMIN_TOKEN))) as client:
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    assert "db-password-never-shown" not in response.text


_PATH_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ref=_PATH_TEXT | st.integers(min_value=-(2**80), max_value=2**80).map(str),
       limit=_PATH_TEXT | st.integers(min_value=-(2**70), max_value=2**70).map(str))
def test_any_tenant_id_or_limit_gets_a_json_answer_never_a_500(
    client: TestClient, tenants: Tenants, ref: str, limit: str
) -> None:
    ref = quote(ref, safe="")
    for path, params in ((f"/api/tenants/{ref}", {}), (f"/api/tenants/{ref}/changes", {"limit": limit}),
                         (f"/api/tenants/{tenants.alpha}/changes", {"limit": limit})):
        response = client.get(path, headers=AUTH, params=params)
        assert response.status_code in (200, 400, 404, 405), (path, response.status_code)
        assert isinstance(response.json(), dict)
