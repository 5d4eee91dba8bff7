"""`teamsconnect worker | beat | web` started as real processes on real Redis, and the health checks the
containers use; plus the plain-language refusals (unknown queue, in-process broker)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import Result

from cli.processes import parse_queues, worker_argv
from tests.conftest import REDIS_URL

Run = Callable[..., Result]
# A database of its own (15: tests/conftest.py, 12 and 13: simulators/stack.py), so no other test flushes it.
BROKER_URL = REDIS_URL.rsplit("/", 1)[0] + "/10"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(cli_env: None, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Redis as the broker (emptied before and after) and a migrated SQLite database, in this process's
    environment and so in every process a test starts."""
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    monkeypatch.setenv("TEAMSCONNECT_BROKER_URL", BROKER_URL)
    monkeypatch.setenv("TEAMSCONNECT_DATABASE_URL", sqlite_url)
    yield BROKER_URL
    client.flushdb()
    client.close()


@pytest.fixture
def start() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `teamsconnect ARGS...` as a child process; stops it (SIGTERM, then SIGKILL) afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def launch(*args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=dict(os.environ),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield launch
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _until_healthy(run: Run, process: subprocess.Popen[bytes], *args: str, timeout: float = 40.0) -> Result:
    deadline = time.monotonic() + timeout
    while True:
        result = run("healthcheck", *args)
        if result.exit_code == 0:
            return result
        if process.poll() is not None:
            raise AssertionError(f"the process exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy within {timeout} s: {result.output}")
        time.sleep(0.2)  # polling interval of a condition with a deadline


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_builds_the_worker_command_for_all_four_queues_by_default() -> None:
    assert parse_queues("poll,apply,events,maintenance") == ["poll", "apply", "events", "maintenance"]
    assert worker_argv(parse_queues(" poll, poll,apply "), 4, "INFO", None) == [
        "worker", "--queues=poll,apply", "--loglevel=INFO", "--concurrency=4"]


def test_it_rejects_an_unknown_queue(run: Run, broker: str) -> None:
    result = run("worker", "--queues", "poll,polls")
    assert result.exit_code == 2
    assert "unknown queue polls" in result.output and "poll,apply,events,maintenance" in result.output


def test_it_refuses_the_in_process_broker_for_separate_processes(run: Run, cli_env: None) -> None:
    for command in ("worker", "beat", "flower"):
        result = run(command)
        assert result.exit_code == 2, command
        assert "TEAMSCONNECT_BROKER_URL is memory://" in result.stderr and "redis://" in result.stderr


def test_it_runs_a_worker_that_answers_the_health_check(
    run: Run, broker: str, start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    before = run("healthcheck", "worker", "--timeout", "0.5")
    assert before.exit_code == 1 and "did not answer" in before.stdout
    worker = start("worker", "--concurrency", "1", "--pool", "solo")
    result = _until_healthy(run, worker, "worker", "--timeout", "1")
    assert f"celery@{socket.gethostname()} answered" in result.stdout


def test_it_runs_beat_whose_tick_the_health_check_sees(
    run: Run, broker: str, start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    before = run("healthcheck", "beat")
    assert before.exit_code == 1 and "no beat has registered the tick entry" in before.stdout
    beat = start("beat")
    assert "last tick at 20" in _until_healthy(run, beat, "beat").stdout


def test_it_runs_the_web_app_and_checks_healthz(
    run: Run, broker: str, start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/healthz"
    down = run("healthcheck", "http", url)
    assert down.exit_code == 1 and "ConnectError" in down.stdout
    web = start("web", "--port", url.split(":")[2].split("/")[0])
    assert "answered 200" in _until_healthy(run, web, "http", url).stdout


def test_it_checks_that_the_schema_is_current(run: Run, cli_env: None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("TEAMSCONNECT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    empty = run("healthcheck", "db")
    assert empty.exit_code == 1 and "schema at nothing" in empty.stdout
    monkeypatch.setenv("TEAMSCONNECT_DATABASE_URL", sqlite_url)
    assert run("healthcheck", "db").exit_code == 0
