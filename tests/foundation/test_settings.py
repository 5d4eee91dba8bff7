"""Settings: defaults work without servers; bad values fail at start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings
from models.crypto import SecretBox, SecretBoxError, box_from_settings, generate_key


def test_it_defaults_to_embedded_sqlite_and_in_process_broker(tmp_path: Path) -> None:
    settings = load_settings({"TEAMSCONNECT_DATA_DIR": str(tmp_path)})
    assert settings.mode == "embedded"
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'teamsconnect.db'}"
    assert settings.broker_url == "memory://"


def test_it_names_an_unknown_database_scheme() -> None:
    with pytest.raises(SettingsError, match="TEAMSCONNECT_DATABASE_URL: unknown database scheme 'mysql'"):
        load_settings({"TEAMSCONNECT_DATABASE_URL": "mysql://db/x"})


def test_it_names_an_unknown_broker_scheme() -> None:
    with pytest.raises(SettingsError, match="TEAMSCONNECT_BROKER_URL"):
        load_settings({"TEAMSCONNECT_BROKER_URL": "amqp://guest@localhost//"})


def test_it_names_a_bad_log_level() -> None:
    with pytest.raises(SettingsError, match="TEAMSCONNECT_LOG_LEVEL"):
        load_settings({"TEAMSCONNECT_LOG_LEVEL": "LOUD"})


def test_it_reads_the_egress_ips_customers_are_told_to_trust() -> None:
    settings = load_settings({"TEAMSCONNECT_EGRESS_IPS": " 203.0.113.10 , 198.51.100.0/28,2001:db8::1 "})
    assert settings.egress_ip_list == ["203.0.113.10", "198.51.100.0/28", "2001:db8::1"]
    assert load_settings({}).egress_ip_list == []
    with pytest.raises(SettingsError, match=r"TEAMSCONNECT_EGRESS_IPS: 'pbx.example' is not an IP address"):
        load_settings({"TEAMSCONNECT_EGRESS_IPS": "203.0.113.10,pbx.example"})


def test_it_uses_psycopg3_for_plain_postgresql_urls() -> None:
    settings = load_settings({"TEAMSCONNECT_DATABASE_URL": "postgresql://u@h/db"})
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"


def test_it_refuses_production_without_a_key_or_shared_servers() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"TEAMSCONNECT_MODE": "production", "TEAMSCONNECT_DATABASE_URL": "postgresql://h/db"})
    for variable in ("TEAMSCONNECT_ENCRYPTION_KEYS", "TEAMSCONNECT_REDIS_URL", "TEAMSCONNECT_BROKER_URL"):
        assert variable in str(raised.value)


def test_it_names_a_malformed_key() -> None:
    settings = load_settings({"TEAMSCONNECT_ENCRYPTION_KEYS": f"{generate_key()},not-a-key"})
    with pytest.raises(SecretBoxError, match="TEAMSCONNECT_ENCRYPTION_KEYS: key number 2 is not a valid"):
        box_from_settings(settings)


def test_it_creates_and_keeps_the_embedded_key_file(tmp_path: Path) -> None:
    settings = load_settings({"TEAMSCONNECT_DATA_DIR": str(tmp_path)})
    first = box_from_settings(settings)
    ciphertext = first.encrypt("hello")
    assert (tmp_path / "encryption.key").stat().st_mode & 0o777 == 0o600
    second = box_from_settings(settings)
    assert second.decrypt(ciphertext) == "hello"


def test_it_fails_at_start_up_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "db", "upgrade"],
        env={"TEAMSCONNECT_DATABASE_URL": "oracle://x", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert result.returncode == 2
    assert "TEAMSCONNECT_DATABASE_URL: unknown database scheme 'oracle'" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_has_a_box_repr_without_keys() -> None:
    key = generate_key()
    assert key not in repr(SecretBox([key]))
