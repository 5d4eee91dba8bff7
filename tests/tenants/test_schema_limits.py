"""Hostile tenant definitions (issue 13, items 4, 6, 7): every one is refused by the schema with the field
and the fix, before anything reaches the database; what passes the schema is stored on real PostgreSQL and
SQLite without a database error."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from models.crypto import SecretBox
from tenants.changes import nest
from tenants.schema import TenantConfigError, validate_config
from tenants.service import create_tenant
from tests.cli.conftest import SECRETS, TENANT


def _with(**dotted: Any) -> dict[str, Any]:
    data = copy.deepcopy(TENANT)
    for path, value in dotted.items():
        *parents, leaf = path.split("__")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def _problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(TenantConfigError) as refused:
        validate_config(data)
    for secret in SECRETS:
        assert secret not in str(refused.value)
    return dict(refused.value.problems)


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"description": "d" * 2_001}, "description", "2000"),
    ({"description": "x" * 5_000_000}, "description", "2000"),
    ({"selection__login_ids": [str(1000 + n) for n in range(10_001)]}, "selection.login_ids", "10000"),
    ({"selection__login_ids": [str(n) for n in range(200_000)]}, "selection.login_ids", "at most"),
    ({"selection__login_ids": ["1" * 101]}, "selection.login_ids", "100"),
    ({"selection__starface_group_id": 2**31}, "selection.starface_group_id", "2147483647"),
    ({"selection__starface_group_id": 2**70}, "selection.starface_group_id", "2147483647"),
    ({"starface__base_url": "https://" + "p" * 290 + ".example"}, "starface.base_url", "255"),
    ({"microsoft__graph_base_url": "https://graph.example/" + "x" * 300}, "microsoft.graph_base_url", "255"),
    ({"microsoft__directory_id": ("a" * 60 + ".") * 3 + "com"}, "microsoft.directory_id", "100"),
    ({"starface__login_id": "0" * 101}, "starface.login_id", "100"),
    ({"starface__password": "p" * 1_001}, "starface.password", "1000"),
    ({"microsoft__client_secret": "s" * 1_001}, "microsoft.client_secret", "1000"),
    ({"starface__base_url": "https://pbx.example/\x00"}, "starface.base_url", "NUL"),
    ({"starface__base_url": "https://pbx .example"}, "starface.base_url", "spaces"),
])
def test_it_refuses_oversized_and_out_of_range_values_naming_the_field(
    change: dict[str, Any], field: str, words: str
) -> None:
    problems = _problems(_with(**change))
    assert field in problems, problems
    assert words.replace("2000", "2000").lower() in problems[field].lower().replace(",", ""), problems[field]


@pytest.mark.parametrize("path", [
    "name", "description", "microsoft__client_secret", "starface__password", "starface__bridge__secret",
    "starface__login_id", "starface__bridge__instance", "rules__InACall__chat_text",
])
def test_it_refuses_a_nul_byte_in_every_string_field(path: str) -> None:
    problems = _problems(_with(**{path: "ab\x00cd"}))
    dotted = path.replace("__", ".")
    assert dotted in problems and "NUL" in problems[dotted], problems


def test_it_refuses_a_nul_byte_in_a_list_item_and_a_key() -> None:
    problems = _problems(_with(selection__login_ids=["1001", "10\x0002"], options={"set_dnd\x00": True}))
    assert "selection.login_ids.1" in problems
    assert any("NUL" in message for message in problems.values())


def test_the_limits_themselves_are_accepted(sessions: sessionmaker[Session], box: SecretBox) -> None:
    data = _with(description="d" * 2_000, selection__login_ids=[str(n) for n in range(1, 10_001)],
                 selection__starface_group_id=2**31 - 1, starface__login_id="0" * 100,
                 starface__base_url="https://" + "p" * 238 + ".example")
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, validate_config(data))
        session.flush()
        assert (len(tenant.login_ids), tenant.starface_group_id) == (10_000, 2**31 - 1)


# --- item 6: where tenant URLs may point -----------------------------------------------------------------


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[pytest.MonkeyPatch]:
    for name, value in {"MODE": "production", "DATABASE_URL": "postgresql://u@db/teamsconnect",
                        "REDIS_URL": "redis://redis:6379/1", "BROKER_URL": "redis://redis:6379/0",
                        "ENCRYPTION_KEYS": "k" * 44, "DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(f"TEAMSCONNECT_{name}", value)
    monkeypatch.delenv("TEAMSCONNECT_ALLOW_PRIVATE_URLS", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


INTERNAL = [
    "https://169.254.169.254/latest/meta-data", "https://169.254.169.254", "https://[fd00:ec2::254]",
    "https://metadata.google.internal", "https://127.0.0.1:8443", "https://127.1", "https://2130706433",
    "https://0x7f.0.0.1", "https://localhost", "https://pbx.localhost", "https://10.1.2.3",
    "https://192.168.178.20", "https://172.16.0.9", "https://[::1]", "https://[::ffff:10.0.0.1]",
    "https://0.0.0.0", "https://169.254.10.10", "https://[fe80::1]", "https://100.64.0.1",
]


@pytest.mark.parametrize("url", INTERNAL)
@pytest.mark.parametrize("field", ["starface__base_url", "microsoft__login_base_url",
                                   "microsoft__graph_base_url"])
def test_production_refuses_internal_addresses_for_tenant_urls(production: Any, url: str, field: str) -> None:
    problems = _problems(_with(**{field: url}))
    dotted = field.replace("__", ".")
    assert dotted in problems, problems
    assert "TEAMSCONNECT_ALLOW_PRIVATE_URLS" in problems[dotted] or "metadata" in problems[dotted]


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "http://pbx.example.com", "http://10.0.0.5:80"])
def test_production_refuses_plain_http_even_where_private_urls_are_allowed(production: Any, url: str) -> None:
    production.setenv("TEAMSCONNECT_ALLOW_PRIVATE_URLS", "true")
    get_settings.cache_clear()
    problems = _problems(_with(starface__base_url=url))
    assert "https://" in problems["starface.base_url"] and "clear text" in problems["starface.base_url"]


def test_production_allows_a_private_pbx_when_the_operator_says_so(production: Any) -> None:
    production.setenv("TEAMSCONNECT_ALLOW_PRIVATE_URLS", "true")
    get_settings.cache_clear()
    assert validate_config(_with(starface__base_url="https://192.168.178.20:8443")).starface.base_url == \
        "https://192.168.178.20:8443"
    problems = _problems(_with(starface__base_url="https://169.254.169.254"))
    assert "metadata" in problems["starface.base_url"]


def test_production_accepts_public_https(production: Any) -> None:
    config = validate_config(_with(starface__base_url="https://pbx.contoso.example:8443"))
    assert config.starface.base_url == "https://pbx.contoso.example:8443"
    assert config.microsoft.graph_base_url == "https://graph.microsoft.com"


def test_embedded_mode_keeps_loopback_http_for_the_simulators() -> None:
    get_settings.cache_clear()
    assert get_settings().mode == "embedded"
    assert validate_config(_with(starface__base_url="http://127.0.0.1:8081")).starface.base_url == \
        "http://127.0.0.1:8081"


# --- fuzz: whatever a definition holds, the answer is a TenantConfigError or a storable config ---------

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
            | st.floats(allow_nan=True) | st.text(max_size=300))
_FIELDS = ["name", "description", "enabled", "log_level", "poll_interval_s", "options.set_dnd",
           "options.teams_presence_mode", "selection.mode", "selection.starface_group_id",
           "selection.login_ids", "microsoft.directory_id", "microsoft.client_id", "microsoft.client_secret",
           "microsoft.secret_expires_at", "microsoft.login_base_url", "starface.base_url",
           "starface.login_id", "starface.password", "starface.bridge.instance", "starface.bridge.secret",
           "rules.InACall.chat_text", "rules.Away.dnd", "rules", "starface.bridge", "unknown.key"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(_FIELDS),
                               _scalars | st.lists(_scalars, max_size=5)
                               | st.dictionaries(st.text(max_size=10), _scalars, max_size=3),
                               max_size=4))
def test_any_definition_is_refused_clearly_or_stored(
    pg_sessions: sessionmaker[Session], box: SecretBox, changes: dict[str, Any]
) -> None:
    data = copy.deepcopy(TENANT)
    for path, value in nest(changes).items():
        data[path] = value if not isinstance(value, dict) or not isinstance(data.get(path), dict) \
            else {**data[path], **value}
    try:
        config = validate_config(data)
    except TenantConfigError as refused:
        assert refused.problems and all(message for _, message in refused.problems)
        return
    with pg_sessions() as session, session.begin():
        create_tenant(session, box, config)
        session.flush()
        session.rollback()
