"""Smoke test of bench/pipeline.py in its quick mode: it runs end to end as an operator runs it (a
subprocess on real PostgreSQL, Redis, worker processes and both simulators) and prints one JSON object
with every key the README promises. Invariants only - never wall-clock speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
# Own databases on the suite's Redis, so the smoke test never flushes the queues of the pipeline tests.
REDIS_ENV = {
    "TEAMSCONNECT_TEST_BROKER_URL": REDIS_URL.rsplit("/", 1)[0] + "/11",
    "TEAMSCONNECT_TEST_COORDINATION_URL": REDIS_URL.rsplit("/", 1)[0] + "/10",
}
REQUIRED = {
    "users": None, "tenants": None, "workers": None,
    "steady": ["records_per_s_per_worker", "graph_requests_per_cycle", "expected_requests_per_cycle",
               "db_queries_per_batch"],
    "changes": ["starface_writes_per_s", "duplicate_writes"],
    "latency_ms": ["teams_to_starface", "starface_to_teams"],
    "graph_requests_per_user_hour": None,
    "steady_workers": ["records_per_worker_cpu_s", "simulator_cpu_us_per_graph_request",
                       "worker_cpu_per_simulator_cpu"],
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    results = tmp_path_factory.mktemp("bench-results")
    env = {k: v for k, v in os.environ.items() if k != "TEAMSCONNECT_BENCH_DATABASE_URL"}
    env.update(REDIS_ENV)
    completed = subprocess.run(
        [sys.executable, "bench/pipeline.py", "--users", "700", "--tenants", "1", "--workers", "2", "--quick",
         "--results-dir", str(results)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout), results, completed.stdout


def test_it_prints_exactly_one_json_object_with_every_promised_key(
        bench_run: tuple[dict[str, Any], Path, str]) -> None:
    result, _, stdout = bench_run
    assert len(stdout.strip().splitlines()) == 1  # nothing else on stdout (workers, progress -> stderr)
    for key, inner in REQUIRED.items():
        assert key in result, key
        for name in inner or []:
            assert name in result[key], f"{key}.{name}"
    for direction in ("teams_to_starface", "starface_to_teams"):
        assert set(result["latency_ms"][direction]) >= {"p50", "p95", "p99"}
    assert (result["users"], result["tenants"], result["workers"]) == (700, 1, 2)


def test_it_polls_with_one_graph_request_per_650_users(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    steady = bench_run[0]["steady"]
    assert steady["expected_requests_per_cycle"] == 2  # ceil(700 / 650)
    assert steady["graph_requests_per_cycle"] == steady["expected_requests_per_cycle"]
    assert steady["updates_enqueued"] == 0 and steady["batches_skipped"] == []
    assert steady["db_queries_per_batch"] == steady["db_queries_per_batch_min"]  # constant per batch


def test_it_applies_every_change_once(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    changes = bench_run[0]["changes"]
    assert changes["duplicate_writes"] == 0
    assert changes["changes"] == 140  # users / 5
    assert changes["dnd_puts"] == changes["chat_writes"] == changes["changelog_rows"] == 140
    # A phoneconfig read, the DND PUT and the chat write per change, the chat reads shared (4 each before).
    assert 3 <= changes["starface_requests_per_change"] < 4


def test_it_measures_every_latency_sample(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    latency = bench_run[0]["latency_ms"]
    for direction in ("teams_to_starface", "starface_to_teams"):
        assert latency[direction]["n"] == 24 and latency[direction]["missing"] == 0
        assert 0 < latency[direction]["p50"] <= latency[direction]["p95"] <= latency[direction]["p99"]


def test_it_writes_the_json_plot_and_profile(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    result, results, _ = bench_run
    assert json.loads((results / "last.json").read_text()) == result
    assert (results / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "run_poll" in (results / "profile.txt").read_text()


def test_compare_names_each_scale_figure_by_configuration_and_worker_count() -> None:
    from bench.compare import scale_figures

    result = {"configs": [{"tenants": 2000, "users_per_tenant": 25, "poll_statements_per_tenant_cycle": 0.15,
                           "runs": [{"workers": 1, "worker_cpu_ms_per_tenant_cycle": 3.1,
                                     "worker_cpu_per_simulator_cpu": 2.05, "poll_lag_s": {"p95": 2.0}},
                                    {"workers": 2, "worker_cpu_ms_per_tenant_cycle": 2.9}]}]}
    figures = scale_figures(result)
    assert figures["2000x25.w1.worker_cpu_ms_per_tenant_cycle"] == 3.1
    assert figures["2000x25.w2.worker_cpu_ms_per_tenant_cycle"] == 2.9
    assert figures["2000x25.w1.worker_cpu_per_simulator_cpu"] == 2.05
    assert figures["2000x25.w1.poll_lag_s.p95"] == 2.0 and figures["2000x25.w2.poll_lag_s.p95"] is None
    assert figures["2000x25.poll_statements_per_tenant_cycle"] == 0.15


def test_compare_gives_a_revision_with_other_locked_dependencies_its_own_interpreter(tmp_path: Path) -> None:
    from bench.compare import LOCKS, locks_match, python_for

    for lock in LOCKS:
        (tmp_path / lock).write_bytes((ROOT / lock).read_bytes())
    assert locks_match(tmp_path) and python_for(tmp_path, tmp_path / "venv") == sys.executable
    (tmp_path / LOCKS[-1]).write_bytes((ROOT / LOCKS[-1]).read_bytes() + b"hiredis==3.5.0\n")
    assert not locks_match(tmp_path)


def test_the_clients_benchmark_prints_the_cost_per_tenant() -> None:
    command = [sys.executable, str(ROOT / "bench" / "clients.py"), "--tenants", "3", "--guarded"]
    completed = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, check=True, timeout=60)
    result = json.loads(completed.stdout)
    assert result["tenants"] == 3 and result["guarded"] is True
    assert result["cpu_ms_per_tenant"] >= 0 and result["rss_mb_per_tenant"] is not None


def _one_process_bench(tmp_path: Path, script: str, *options: str) -> dict[str, Any]:
    """Runs bench/<script> on a fresh database; its printed result, checked against the file it wrote."""
    results = tmp_path / "result.json"
    command = [sys.executable, str(ROOT / "bench" / script), *options, "--results", str(results)]
    env = {k: v for k, v in os.environ.items() if k != "TEAMSCONNECT_BENCH_DATABASE_URL"}  # a fresh database
    completed = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, check=True, timeout=120)
    result: dict[str, Any] = json.loads(completed.stdout)
    assert result == json.loads(results.read_text())
    machine = result["machine"]
    assert machine["cpus"] and machine["cpu_model"] and machine["cpu_generation"]
    return result


def test_the_decide_benchmark_times_each_step_of_a_settled_batch(tmp_path: Path) -> None:
    result = _one_process_bench(tmp_path, "decide.py", "--users", "30", "--repeats", "1")
    assert set(result["cpu_us_per_user"]) == {"read_orm", "read_rows", "parse", "decide", "settled"}
    assert result["users"] == 30 and all(value > 0 for value in result["records_per_cpu_s"].values())


def test_the_events_benchmark_times_an_echo_event_that_changes_nothing(tmp_path: Path) -> None:
    result = _one_process_bench(tmp_path, "events.py", "--users", "10", "--repeats", "5")
    assert result["outcome"] == {"action": "unchanged"}  # an echo of our own write
    assert result["cpu_us_per_event"] > 0
    assert result["statements_per_event"] == 4  # fingerprint, user, rival check, the two rows


def test_the_webhook_benchmark_times_an_accepted_event(tmp_path: Path) -> None:
    result = _one_process_bench(tmp_path, "webhook.py", "--repeats", "5")
    assert result["outcomes"] == ["accepted"]  # every event signed, new and queued
    assert result["cpu_us_per_event"] > 0
    assert result["statements_per_event"] == 0  # the tenant's bridge secret is kept (sync/bridge_tenants.py)


def test_the_http_pools_benchmark_times_every_arrangement(tmp_path: Path) -> None:
    result = _one_process_bench(tmp_path, "http_pools.py", "--threads", "8", "--requests", "5",
                                "--rounds", "1")
    assert set(result["cpu_us_per_request"]) == {"one_client", "clients_by_thread", "transports_by_thread"}
    assert all(value > 0 for value in result["cpu_us_per_request"].values()) and result["ratio"] > 0
    assert result["ratio_transports_to_clients"] > 0
