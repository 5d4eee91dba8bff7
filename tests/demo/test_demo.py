"""`teamsconnect demo --short` runs the whole product in this process on embedded defaults (SQLite, the
in-process broker, both simulators) and exits 0 only when every scripted expectation held."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from demo.script import office_hour


def _leftover_threads(before: set[threading.Thread], timeout: float = 15.0) -> list[str]:
    """Threads the demo started that are still alive once ``timeout`` has passed (polled, not slept)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_it_plays_the_short_office_hour_and_exits_0_with_a_clean_summary(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    before = set(threading.enumerate())
    result = CliRunner().invoke(app, ["demo", "--short", "--seed", "3", "--data-dir", str(data_dir)])
    output = result.output
    assert result.exit_code == 0, output[-4000:]
    assert "RESULT: every scripted expectation held" in output
    held = re.search(r"expectations held: (\d+) of (\d+)", output)
    assert held is not None and held.group(1) == held.group(2) and int(held.group(1)) >= 30
    assert "duplicate writes: 0 " in output
    teams_to_starface = re.search(r"Teams -> STARFACE: (\d+) +latency p50 (\d+) ms, p95 (\d+) ms", output)
    starface_to_teams = re.search(r"STARFACE -> Teams: (\d+) +latency p50 (\d+) ms, p95 (\d+) ms", output)
    assert teams_to_starface is not None and int(teams_to_starface.group(1)) >= 20
    assert starface_to_teams is not None and int(starface_to_teams.group(1)) == 2  # one call: set, cleared
    assert re.search(r"Graph requests made: \d+ \(.*getPresencesByUserId \d+", output)
    # Every scripted event and its check is in the plain (non-terminal) output.
    for event in ("switches DND on by hand", "the STARFACE app overwrites the chat text", "drift repair runs",
                  "answers a call on the STARFACE phone", "goes out of office", "Graph throttles",
                  "joins a Teams meeting", "a calendar meeting begins"):
        assert event in output, event
    assert "(Teams leads, as in the STARFACE module: the status change decides)" in output  # issue 11
    assert "no Graph presence request before Retry-After during the burst" in output
    assert "FAIL" not in output
    # Embedded defaults: the SQLite file (and the key) live in the data dir, with the audit trail in it.
    with sqlite3.connect(data_dir / "teamsconnect.db") as db:
        (changes,) = db.execute("SELECT count(*) FROM change_log").fetchone()
    assert changes == int(teams_to_starface.group(1)) + int(starface_to_teams.group(1)) + \
        int(re.search(r"re-applied\): (\d+)", output).group(1))  # type: ignore[union-attr]
    assert (data_dir / "encryption.key").exists()
    # Nothing keeps running: simulators, web app and worker threads are all stopped.
    assert _leftover_threads(before) == []


def test_it_plays_the_same_hour_for_the_same_seed_and_another_for_another_seed() -> None:
    def plan(seed: int) -> list[tuple[float, str]]:
        steps, _ = office_hour(seed, 200)
        return [(step.minute, step.text) for step in steps]

    assert plan(11) == plan(11)
    assert plan(11) != plan(12)
    texts = " | ".join(text for _, text in plan(11))
    assert texts.count("starts a Teams call") >= 20  # 200 users: 20 background calls plus the featured ones
