"""Benchmark of the whole pipeline: steady-state poll throughput, change load, latency, Graph cost.

    python bench/pipeline.py [--users 10000] [--tenants 1] [--workers 2] [--quick]

Runs against both simulators over real HTTP, real PostgreSQL and Redis and Celery worker processes
(simulators/stack.py). Progress goes to stderr; stdout carries ONE JSON object, also written to
bench/results/last.json with the latency plot (latency.png) and the hot-path profile (profile.txt).
What each figure measures is in bench/README.md and in the "method"/"measured" fields of the JSON.

Phases: setup (tenants, directory sync, Teams sign-ins, worker processes) -> warm-up -> steady state
(bench/steady.py) -> profile -> latency (bench/latency.py) -> change load (bench/changes.py). The change
load runs last: a backlog it leaves must not distort the latency figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: import bench.* and tests.* from the repository root,
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # not the modules of bench/ by bare name

from bench.changes import measure_changes  # noqa: E402
from bench.harness import (  # noqa: E402
    TickDriver,
    add_tenants,
    bench_database,
    linked_counts,
    make_due,
    pass_settings,
    progress,
    remove_tenants,
    teams_action,
    tenant_of,
    tenant_seeds,
)
from bench.latency import measure_latency  # noqa: E402
from bench.procstat import CpuMeter, rss_mb, this_machine  # noqa: E402
from bench.report import plot_latency, targets_met, write_json  # noqa: E402
from bench.steady import measure_steady, measure_steady_workers, profile_steady, warm_up  # noqa: E402
from embedded.stack import BROKER_URL, COORDINATION_URL, StackFactory  # noqa: E402
from models.crypto import generate_key  # noqa: E402
from models.tenant import DEFAULT_POLL_INTERVAL_S  # noqa: E402
from scheduler.tick import GRAPH_BATCH_SIZE, effective_interval_s  # noqa: E402
from sync.coordination import BudgetShape  # noqa: E402
from workers.task_queue import CELERY_QUEUE  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CADENCE_S = DEFAULT_POLL_INTERVAL_S  # the tenants' poll interval floor (the product default, 1 s)
TICK_PERIOD_S = 1.0  # beat's tick entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="users in total (default 10,000)")
    parser.add_argument("--tenants", type=int, default=1, help="tenants sharing the users (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test)")
    parser.add_argument("--changes", type=int, default=None,
                        help="users changing at once in the change load (default min(2000, users/5))")
    parser.add_argument("--samples", type=int, default=None,
                        help="latency samples per direction (default 200, quick 24)")
    parser.add_argument("--latency-seconds", type=float, default=None,
                        help="length of the latency phase (default 40, quick 8)")
    parser.add_argument("--change-timeout", type=float, default=None,
                        help="longest wait for the change load to land (default 90 s, quick 60 s)")
    parser.add_argument("--cycles", type=int, default=None, help="steady-state cycles (default 10, quick 3)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the latency schedule")
    parser.add_argument("--steady-seconds", type=float, default=None,
                        help="window of the steady state in the worker processes (default 20, quick 6)")
    parser.add_argument("--pbx-in-flight", type=int, default=None,
                        help="STARFACE requests in flight per PBX (deployment setting; default 4)")
    parser.add_argument("--pbx-per-s", type=float, default=None,
                        help="STARFACE requests per second per PBX (deployment setting; default 20)")
    parser.add_argument("--flower-poll-tasks", action="store_true",
                        help="polls send Flower their task events (deployment setting; default off)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where last.json, latency.png and profile.txt go (default bench/results)")
    args = parser.parse_args(argv)
    if args.users < 50 or args.tenants < 1 or args.workers < 1:
        parser.error("need --users >= 50, --tenants >= 1 and --workers >= 1")
    if args.tenants > args.users // 10:
        parser.error("need at least 10 users per tenant")
    args.changes = args.changes or min(2000, args.users // 5)
    args.samples = args.samples or (24 if args.quick else 200)
    args.latency_seconds = args.latency_seconds or (8.0 if args.quick else 40.0)
    args.cycles = args.cycles or (3 if args.quick else 10)
    args.change_timeout = args.change_timeout or (60.0 if args.quick else 90.0)
    args.steady_seconds = args.steady_seconds or (6.0 if args.quick else 20.0)
    return args


def assign_users(users: int, tenants: int, changes: int,
                 samples: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Disjoint users for the change load, Teams -> STARFACE and STARFACE -> Teams samples (and the
    STARFACE calls during the change load), spread over the tenants; STARFACE -> Teams samples come from
    the last tenant, whose webhook the PBX calls."""
    step = 5
    if changes > users // step or samples > users // step:
        raise SystemExit(f"--changes and --samples must be at most users/{step} = {users // step}")
    change_users = [i * step for i in range(changes)]
    teams_users = [i * step + 1 for i in range(samples)]
    last = [i for i in range(users) if i % step == 2 and tenant_of(i, users, tenants) == tenants - 1]
    if len(last) < samples:
        raise SystemExit(f"the last tenant has only {len(last)} users for {samples} STARFACE samples")
    under_load = [i for i in range(users) if i % step == 3 and tenant_of(i, users, tenants) == tenants - 1]
    return change_users, teams_users, last[:samples], under_load[:samples]


@contextmanager
def stdout_for_json() -> Any:
    """Yields the real stdout for the JSON and points fd 1 at stderr meanwhile, so nothing else (the
    Celery workers' banners, stray prints) can end up in the machine-readable output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(saved, "w")
    try:
        yield out
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        out.close()


def graph_cost(counts: dict[int, int], users: int) -> tuple[int, float]:
    """Graph requests per cycle (sum over tenants of ceil(n / 650)) and per user-hour at the cadence."""
    shape = BudgetShape.for_limit()
    per_cycle = sum(math.ceil(n / GRAPH_BATCH_SIZE) for n in counts.values())
    per_hour = sum(math.ceil(n / GRAPH_BATCH_SIZE) * 3600 / effective_interval_s(CADENCE_S, n, shape)
                   for n in counts.values())
    return per_cycle, per_hour / users


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    change_users, teams_users, pbx_users, load_users = assign_users(args.users, args.tenants, args.changes,
                                                                    args.samples)
    pass_settings({"TEAMSCONNECT_STARFACE_MAX_IN_FLIGHT": args.pbx_in_flight,
                   "TEAMSCONNECT_STARFACE_MAX_PER_S": args.pbx_per_s,
                   "TEAMSCONNECT_FLOWER_POLL_TASKS": "true" if args.flower_poll_tasks else None})
    with bench_database() as (database_url, database), \
            contextmanager(StackFactory(database_url, generate_key()).build)(
                tenant_seeds(args.users, args.tenants), processes=True) as stack:
        progress(f"setup: {args.users} users, {args.tenants} tenant(s); syncing directories")
        started = time.perf_counter()
        tenant_ids = add_tenants(stack, args.tenants)
        sync_s = time.perf_counter() - started
        counts = linked_counts(stack, tenant_ids)
        if sum(counts.values()) != args.users:
            raise SystemExit(f"only {sum(counts.values())} of {args.users} users were linked")
        signed_in = change_users + teams_users + pbx_users
        started = time.perf_counter()
        teams_action(stack, signed_in, "sign_in")
        progress(f"setup: directory sync {sync_s:.1f} s, {len(signed_in)} Teams sign-ins "
                 f"{time.perf_counter() - started:.1f} s; starting {args.workers} worker process(es)")
        stack.start_worker("bench", concurrency=args.workers)
        main_workers = [p.pid for p in stack.workers if p not in stack.events_workers]
        meter = CpuMeter({
            "workers": main_workers,
            "events_worker": [p.pid for p in stack.events_workers],
            **{name: [process.pid] for name, process in stack.services.items()},
        }, alone={"workers_main_process": main_workers})
        driver = TickDriver(stack, TICK_PERIOD_S)
        try:
            warm = warm_up(stack, tenant_ids, CELERY_QUEUE)
            progress(f"steady: warmed up in {warm} cycle(s); timing {args.cycles} cycles")
            steady = measure_steady(stack, tenant_ids, args.cycles)
            progress(f"steady: {steady['records_per_s_per_worker']} records/s in one process, "
                     f"{steady['graph_requests_per_cycle']} Graph requests/cycle, "
                     f"{steady['db_queries_per_batch']} queries/batch; profiling")
            hottest = profile_steady(stack, tenant_ids, 1 if args.quick else 3,
                                     args.results_dir / "profile.txt")
            per_cycle, per_user_hour = graph_cost(counts, args.users)
            progress(f"steady in the workers: {args.steady_seconds:.0f} s with beat ticking")
            steady_workers = measure_steady_workers(stack, tenant_ids, driver, meter, args.steady_seconds)
            progress(f"steady in the workers: {steady_workers['records_per_worker_cpu_s']} records per "
                     f"worker CPU-second, {steady_workers['worker_cpu_ms_per_tenant_cycle']} ms per "
                     "tenant-cycle")
            progress(f"latency: {args.latency_seconds:.0f} s at {CADENCE_S:.0f} s cadence, beat every "
                     f"{TICK_PERIOD_S:.0f} s, {args.samples} samples per direction")
            make_due(stack, tenant_ids)
            driver.start()
            latency, polling, samples = measure_latency(stack, teams_users, pbx_users, args.latency_seconds,
                                                        args.seed)
            driver.stop()
            progress(f"latency: Teams -> STARFACE p95 {latency['teams_to_starface']['p95']} ms, "
                     f"STARFACE -> Teams p95 {latency['starface_to_teams']['p95']} ms; change load: "
                     f"{len(change_users)} users start a Teams call at once")
            changes = measure_changes(stack, tenant_ids, change_users, driver, batches_per_cycle=per_cycle,
                                      timeout_s=args.change_timeout, meter=meter, pbx_users=load_users)
            latency["starface_to_teams_under_load"] = changes.pop("starface_to_teams_under_load_ms")
            progress(f"changes: {changes['starface_writes_per_s']} writes/s, "
                     f"{changes['duplicate_writes']} duplicate writes, STARFACE -> Teams under load p95 "
                     f"{latency['starface_to_teams_under_load']['p95']} ms")
            worker_rss = {str(p.pid): rss_mb(p.pid) for p in stack.workers}
        finally:
            driver.stop()
            if os.environ.get("TEAMSCONNECT_BENCH_DATABASE_URL"):
                remove_tenants(stack, tenant_ids)
    measured_per_user_hour = polling["graph_polls"] * 3600 / polling["phase_s"] / args.users
    result: dict[str, Any] = {
        "users": args.users,
        "tenants": args.tenants,
        "workers": args.workers,
        "quick": args.quick,
        "cadence_s": CADENCE_S,
        "steady": steady,
        "steady_workers": steady_workers,
        "changes": changes,
        "latency_ms": latency,
        "graph_requests_per_user_hour": round(per_user_hour, 3),
        "graph_requests_per_user_hour_measured": round(measured_per_user_hour, 3),
        "graph_cost_method": ("per_user_hour = requests per cycle (sum of ceil(users/650) per tenant) x "
                              "cycles per hour at the effective cadence / users; *_measured = "
                              "getPresencesByUserId requests the Microsoft simulator answered during the "
                              "latency phase (beat ticking at 1 s) scaled to an hour; Teams session writes "
                              "(setPresence) are per call, not per user-hour, and not included"),
        "profile_top_own_time": hottest,
        "setup": {
            "database": database,
            "broker": BROKER_URL,
            "coordination": COORDINATION_URL,
            "directory_sync_s": round(sync_s, 1),
            "signed_in_users": len(signed_in),
            "ticks": driver.ticks,
            "tick_errors": driver.errors,
            "worker_processes": (f"one Celery worker on poll/apply/maintenance, prefork pool of "
                                 f"{args.workers}, and a reserved one-process worker on events"),
            "processes": "simulators and web app as their own processes (teamsconnect sim / web)",
            "worker_rss_mb": worker_rss,
            "pbx_limits": {"max_in_flight": stack.runtime.settings.starface_max_in_flight,
                           "max_per_s": stack.runtime.settings.starface_max_per_s},
            "flower_poll_tasks": stack.runtime.settings.flower_poll_tasks,
        },
        "machine": this_machine(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
    }
    result["targets_met"] = targets_met(result)
    subtitle = (f"{args.users} users, {args.tenants} tenant(s), {args.workers} worker processes, "
                f"{os.cpu_count()} cores")
    plot_latency(samples.teams_to_starface_ms, samples.starface_to_teams_ms, subtitle,
                 args.results_dir / "latency.png")
    write_json(result, args.results_dir / "last.json")
    return result


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    with stdout_for_json() as real_stdout:
        result = run(args)
        progress(f"done in {result['duration_s']} s; results in {args.results_dir}")
        (out or real_stdout).write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
