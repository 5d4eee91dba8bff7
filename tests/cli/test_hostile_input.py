"""Hostile CLI input (issue 13, items 4, 7, 9): every case ends in `error:` lines naming the field and the
fix with exit code 2 - never a traceback, never "database: ... check TEAMSCONNECT_DATABASE_URL", never a
secret on the command line. The runner re-raises any exception, so a traceback fails the test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from models.crypto import SecretBox
from models.secrets import read_secrets
from tests.cli.conftest import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD, assert_no_secret

Run = Callable[..., Result]
FLAGS = ["--name", "fabrikam", "--directory-id", "fabrikam.onmicrosoft.com",
         "--client-id", "22222222-2222-2222-2222-222222222222", "--starface-url", "https://pbx.fabrikam.example",
         "--starface-login", "0001"]


def _refused(result: Result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert "TEAMSCONNECT_DATABASE_URL" not in result.stderr and "Traceback" not in result.output
    for word in words:
        assert word in result.stderr, result.stderr
    assert_no_secret(result.output)
    return result.stderr


def _nothing_stored(db: sessionmaker[Session]) -> None:
    with db() as session:
        assert session.scalars(select(Tenant)).all() == []


# --- item 9: secrets on the command line -------------------------------------------------------------


@pytest.mark.parametrize(("flag", "secret"), [("--client-secret", CLIENT_SECRET),
                                              ("--starface-password", STARFACE_PASSWORD),
                                              ("--bridge-secret", BRIDGE_SECRET)])
def test_add_refuses_a_literal_secret_in_a_flag_naming_the_safe_forms(
    run: Run, tmp_path: Path, db: sessionmaker[Session], flag: str, secret: str
) -> None:
    others = {"--client-secret": CLIENT_SECRET, "--starface-password": STARFACE_PASSWORD}
    args = list(FLAGS)
    for other, value in others.items():
        if other != flag:
            path = tmp_path / other.strip("-")
            path.write_text(value)
            args += [other, f"@{path}"]
    result = run("tenant", "add", *args, flag, secret)

    _refused(result, flag, "@FILE", "standard input", "prompted", "`ps`")
    _nothing_stored(db)


def test_add_reads_secrets_from_files_and_stdin(
    run: Run, tmp_path: Path, db: sessionmaker[Session], cli_box: SecretBox
) -> None:
    (tmp_path / "client").write_text(CLIENT_SECRET + "\n")
    (tmp_path / "bridge").write_text(BRIDGE_SECRET)
    result = run("tenant", "add", *FLAGS, "--client-secret", f"@{tmp_path / 'client'}",
                 "--starface-password", "-", "--bridge-secret", f"@{tmp_path / 'bridge'}",
                 input=STARFACE_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with db() as session:
        secrets = read_secrets(session.scalars(select(Tenant)).one(), cli_box)
        assert (secrets.ms_client_secret, secrets.starface_password, secrets.bridge_secret) == (
            CLIENT_SECRET, STARFACE_PASSWORD, BRIDGE_SECRET)


def _added(run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any]) -> None:
    assert run("tenant", "add", "--file", str(write_json(tenant_data))).exit_code == 0


@pytest.mark.parametrize("key", ["microsoft.client_secret", "starface.password", "starface.bridge.secret"])
def test_set_refuses_a_literal_secret_and_takes_stdin(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session],
    cli_box: SecretBox, key: str,
) -> None:
    _added(run, write_json, tenant_data)
    _refused(run("tenant", "set", "contoso", f"{key}=new-literal-secret-value"), key, "@FILE")
    taken = run("tenant", "set", "contoso", f"{key}=-", input="new-secret-from-stdin\n")
    assert taken.exit_code == 0, taken.output
    with db() as session:
        secrets = read_secrets(session.scalars(select(Tenant)).one(), cli_box)
        assert "new-secret-from-stdin" in (secrets.ms_client_secret, secrets.starface_password,
                                           secrets.bridge_secret)


# --- item 4: files that are not what they should be -------------------------------------------------


@pytest.mark.parametrize(("content", "words"), [
    ("\ufeff{}".encode("utf-16"), ("not UTF-8", "save it as UTF-8")),
    (b"\xff\xfe\xfa garbage", ("not UTF-8",)),
    (b"[" * 100_000 + b"]" * 100_000, ("nested too deeply",)),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, ("nested too deeply",)),
    (b"x" * (1024 * 1024 + 1), ("larger than",)),
    (b"{not json", ("not valid JSON",)),
    (b"[1, 2]", ("JSON object",)),
])
def test_add_refuses_a_file_that_is_no_tenant_definition(
    run: Run, tmp_path: Path, db: sessionmaker[Session], content: bytes, words: tuple[str, ...]
) -> None:
    path = tmp_path / "tenant.json"
    path.write_bytes(content)
    _refused(run("tenant", "add", "--file", str(path)), "--file", *words)
    _nothing_stored(db)


@pytest.mark.parametrize(("content", "words"), [
    (b"\xff\xfe\x00s\x00e\x00c", ("not UTF-8",)),
    (b"[" * 100_000, ("nested too deeply",)),
])
def test_set_refuses_a_value_file_that_is_not_text(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], tmp_path: Path, db_url: str,
    content: bytes, words: tuple[str, ...],
) -> None:
    _added(run, write_json, tenant_data)
    path = tmp_path / "value"
    path.write_bytes(content)
    key = "starface.password" if words[0] == "not UTF-8" else "selection.login_ids"
    _refused(run("tenant", "set", "contoso", f"{key}=@{path}"), key, *words)


# --- items 4 and 7: values the database would refuse, named by field ----------------------------------


@pytest.mark.parametrize(("assignment", "field"), [
    ("selection.starface_group_id=2147483648", "selection.starface_group_id"),
    ("starface.base_url=https://" + "p" * 300 + ".example", "starface.base_url"),
    ("description=" + "d" * 2_001, "description"),
    ("starface.login_id=" + "0" * 101, "starface.login_id"),
    ('selection.login_ids=["1001", "10\\u000002"]', "selection.login_ids.1"),
    ("description=with\x00nul", "description"),
])
def test_set_names_the_field_of_a_value_the_database_would_refuse(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db_url: str, assignment: str,
    field: str,
) -> None:
    _added(run, write_json, tenant_data)
    _refused(run("tenant", "set", "contoso", assignment), field)


@pytest.mark.parametrize(("change", "field"), [
    ({"selection": {"mode": "group_plus_listed", "starface_group_id": 2**31}}, "selection.starface_group_id"),
    ({"description": "x" * 5_000}, "description"),
    ({"selection": {"login_ids": [str(n) for n in range(10_001)]}}, "selection.login_ids"),
    ({"name": "con\u0000toso"}, "name"),
    ({"starface": {"base_url": "https://pbx.example/" + "p" * 300}}, "starface.base_url"),
])
def test_add_names_the_field_of_a_value_the_database_would_refuse(
    run: Run, write_json: Callable[..., Path], tenant_data: dict[str, Any], db: sessionmaker[Session],
    change: dict[str, Any], field: str,
) -> None:
    for key, value in change.items():
        tenant_data[key] = {**tenant_data[key], **value} if isinstance(value, dict) else value
    _refused(run("tenant", "add", "--file", str(write_json(tenant_data))), field)
    _nothing_stored(db)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=20).map(lambda value: json.dumps(value).encode()))
def test_any_file_gives_clear_errors(run: Run, tmp_path: Path, db_url: str, content: bytes) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(content)
    result = run("tenant", "add", "--file", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "TEAMSCONNECT_DATABASE_URL" not in result.stderr
