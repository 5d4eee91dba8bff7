"""compose/: Docker cannot run here, so the files are checked as data: every service is health-checked, the
worker can scale, the order of start-up is right, and every TEAMSCONNECT_ variable is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings
from web.settings import WebSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
APP_SERVICES = ("migrate", "web", "worker", "worker-events", "beat", "flower")
SERVICE_PACKAGES = ("config", "models", "scheduler", "workers", "connectors", "presence", "web", "cli")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())["services"]


def test_it_defines_every_process_with_a_health_check(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_it_lets_the_worker_scale(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][0] == "worker"
    assert worker["healthcheck"]["test"][1:] == ["teamsconnect", "healthcheck", "worker"]


def test_it_migrates_once_before_the_app_starts(services: dict[str, Any]) -> None:
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat", "flower"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name


def test_it_builds_every_app_service_from_the_dockerfile_with_the_env_file(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        assert services[name]["build"] == {"context": "..", "dockerfile": "compose/Dockerfile"}, name
        assert services[name]["env_file"] == ".env", name
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "\nFROM python:3.11-slim\n" in dockerfile
    assert 'ENTRYPOINT ["teamsconnect"]' in dockerfile
    # Dependencies only from the hash-pinned locks, which must exist; the project goes on top without any.
    assert "COPY requirements-bootstrap.lock requirements.lock ./\n" in dockerfile
    assert "pip install --require-hashes -r requirements-bootstrap.lock" in dockerfile
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "RUN pip install --no-deps --no-build-isolation ." in dockerfile
    for lock in ("requirements-bootstrap.lock", "requirements.lock"):
        assert "--hash=sha256:" in (ROOT / lock).read_text(), f"{lock} is not hash-pinned"
    copied_dirs = re.findall(r"^COPY (\w+) \./\w+$", dockerfile, re.MULTILINE)
    for copied in copied_dirs:
        assert (ROOT / copied).is_dir(), f"the Dockerfile copies {copied}/, which does not exist"
    missing = sorted(set(SERVICE_PACKAGES) - set(copied_dirs))
    assert not missing, f"the Dockerfile does not copy {missing}"


def test_it_keeps_flower_behind_a_login_on_the_loopback(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert "FLOWER_BASIC_AUTH" in flower["environment"]


def _documented() -> dict[str, str]:
    lines = (COMPOSE / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_it_documents_every_teamsconnect_variable_in_the_env_example() -> None:
    documented = _documented()
    fields = (*Settings.model_fields, *WebSettings.model_fields)
    settings = {f"TEAMSCONNECT_{name.upper()}" for name in fields}
    used = set()
    for package in SERVICE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            used |= set(re.findall(r"TEAMSCONNECT_[A-Z][A-Z_]*[A-Z]", path.read_text(encoding="utf-8")))
    missing = sorted((settings | used) - set(documented))
    assert not missing, f".env.example does not document {missing}"
    assert documented["TEAMSCONNECT_MODE"] == "production"
    assert documented["TEAMSCONNECT_BROKER_URL"].startswith("redis://redis:")
    assert documented["TEAMSCONNECT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "replace" in documented["TEAMSCONNECT_ENCRYPTION_KEYS"]  # a placeholder, never a real key
