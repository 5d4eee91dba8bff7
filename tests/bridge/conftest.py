"""Fixtures for the bridge conformance kit and rival-sync detection: the end-to-end stack (both
simulators over HTTP, PostgreSQL, Redis, the web app) and the `teamsconnect` CLI run against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app
from config.settings import get_settings
from embedded.stack import Stack, StackFactory
from simulators.paired import BRIDGE_SECRET, STARFACE_ADMIN_PASSWORD, paired_seeds


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(3))


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Runs `teamsconnect ARGS...` in-process with the stack's settings (database, Redis, CA, public URL)."""
    for name, value in stack.env.items():
        if name.startswith("TEAMSCONNECT_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("TEAMSCONNECT_PUBLIC_URL", stack.web_url)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        get_settings.cache_clear()
        try:
            return runner.invoke(app, list(args), catch_exceptions=False)
        finally:
            get_settings.cache_clear()

    return invoke


def assert_no_secret(text: str, stack: Stack) -> None:
    for secret in (BRIDGE_SECRET, STARFACE_ADMIN_PASSWORD, stack.seeds.app["secret"]):
        assert secret not in text, "a secret reached the output"
