"""The chaos suite in its quick mode (bench/chaos.py --quick): every scenario, on the suite's own
redis-server and PostgreSQL cluster, which it crashes and restarts. Asserts the invariants only - nothing
lost, nothing written twice, convergence - never wall-clock speed (timeouts are generous)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import NAMES, markdown_table

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    results = tmp_path_factory.mktemp("chaos-results")
    # The suite starts its own Redis and PostgreSQL: nothing of this run's (or the machine's) is handed in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEAMSCONNECT_")}
    completed = subprocess.run([sys.executable, "bench/chaos.py", "--quick", "--results-dir", str(results)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=2300)
    assert completed.returncode == 0, completed.stderr[-6000:]
    return json.loads(completed.stdout), results, completed.stdout


def _by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["scenario"]: s for s in result["scenarios"]}


def test_it_runs_every_scenario_and_prints_one_json_object(chaos: tuple[dict[str, Any], Path, str]) -> None:
    result, results, stdout = chaos
    assert len(stdout.strip().splitlines()) == 1
    assert list(_by_name(result)) == NAMES
    assert json.loads((results / "chaos.json").read_text()) == result
    assert markdown_table(result["scenarios"]) in (results / "chaos.md").read_text()


# Product bugs this suite found, each fixed with a test of its own in tests/pipeline (README, chaos
# section): stale Teams sessions after a hang-up, writes repeated after a PostgreSQL crash or a STARFACE
# timeout, records lost when Redis restarted or a worker died during a batch, a five-minute beat fail-over,
# DND PUTs of updates that failed half-way, and a dead worker's users waiting out a 90 s claim. A bug found
# and not fixed yet goes here, as a non-strict xfail naming the invariant it breaks.
KNOWN_BUGS: dict[str, str] = {}


def _scenario_params() -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_BUGS[name], strict=False))
            if name in KNOWN_BUGS else name for name in NAMES]


@pytest.mark.parametrize("name", _scenario_params())
def test_it_loses_nothing_writes_once_and_converges(chaos: tuple[dict[str, Any], Path, str],
                                                    name: str) -> None:
    scenario = _by_name(chaos[0])[name]
    assert "error" not in scenario, scenario.get("error")
    assert scenario["changes_expected"] == 200
    assert scenario["changes_lost"] == 0, scenario
    assert scenario["changes_applied"] == 200
    assert scenario["duplicate_writes"] == 0, scenario["duplicate_writes_by_account"]
    assert scenario["changes_recorded_twice"] == 0
    assert scenario["writes_to_other_users"] == 0  # no echo of our Teams sessions into STARFACE
    assert scenario["events_lost"] == 0, scenario["events_lost_users"]
    assert scenario["events_stale_session"] == 0
    assert scenario["converged"]


def test_the_faults_really_happened(chaos: tuple[dict[str, Any], Path, str]) -> None:
    scenarios = _by_name(chaos[0])
    assert scenarios["starface_down"]["notes"]["starface_requests_answered_503"] > 0
    assert scenarios["graph_5xx"]["notes"]["graph_answers"].get("503", 0) > 0
    assert scenarios["graph_429_storm"]["notes"]["graph_answers"].get("429", 0) > 0
    # The harness's own read with its stale token (then one sign-in, and read), told apart from a worker's
    # 401 at the same moment by its connection.
    assert scenarios["token_expiry"]["notes"]["graph_401_to_the_harness"] == 1
    assert scenarios["token_expiry"]["notes"]["graph_answers"].get("401", 0) > 0
    assert scenarios["key_rotation"]["notes"]["secrets_rotated"] > 0
    assert scenarios["webhook_chaos"]["notes"]["relay_duplicated"] > 0
    assert scenarios["two_beats"]["notes"]["standby_alive"]
    for name in ("worker_kill", "redis_restart", "postgres_restart", "starface_down", "graph_5xx"):
        assert scenarios[name]["outage_s"] >= 5.0, name
