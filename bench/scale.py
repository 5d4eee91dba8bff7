"""Scale benchmark: many tenants of different sizes, 1, 2 and 4 worker processes, nothing changing.

    python bench/scale.py [--quick] [--configs 1x10000,100x100,2000x25] [--workers 1,2,4] [--seconds 20]
                          [--interval 1] [--worker-cpus 0]

Per configuration (tenants x users per tenant) and worker count, with beat ticking every second (the
harness's tick driver) and every tenant at the product's default cadence (1 s floor, stretched to its
Graph budget; `--interval` sets a longer one, so that the workers can keep up and the CPU per
tenant-cycle is not inflated by receiving and dropping the expired polls of an overloaded queue):
tenant-cycles offered and done per second, worker CPU per tenant-cycle and per user-cycle (user + system
time of the worker process trees from /proc), poll lag p95 (age of each tenant's last successful poll,
sampled every second over all tenants), Graph requests per cycle against sum(ceil(users / 650)), SQL
statements per tenant-cycle (one cycle run in this process with the statement counter, the same code the
task runs) and the RSS of each worker process. The Microsoft simulator's CPU per Graph request in the same
window is the host's yardstick: the same code serving the same requests, it moves with the speed the host
gives (measured 2x apart on one host minutes apart), so worker figures from two windows compare as a
ratio to it. Stack: simulators and web app as their own processes,
PostgreSQL, Redis, Celery workers on poll/apply/maintenance. Each customer is its own Microsoft tenant
in production, with its own Graph limit; here all share the simulator's one, so the simulator runs with
a presence limit high enough not to throttle (the per-tenant budget of ours still applies).

Progress goes to stderr; stdout carries ONE JSON object, also written to bench/results/scale.json with a
plot (scale.png).
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
from typing import Any

if __package__ in (None, ""):  # run as a script: import bench.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from sqlalchemy import func, insert, select  # noqa: E402

from bench.harness import (  # noqa: E402
    FIRST_GROUP_ID,
    TickDriver,
    bench_database,
    pass_settings,
    percentiles,
    progress,
    tenant_seeds,
)
from bench.procstat import CpuMeter, pin, rss_mb, this_machine, tree_of  # noqa: E402
from bench.report import write_json  # noqa: E402
from embedded.stack import Stack, StackFactory  # noqa: E402
from embedded.waiting import wait_until  # noqa: E402
from models import Tenant, UserLink  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.crypto import generate_key  # noqa: E402
from models.db import transaction  # noqa: E402
from models.tenant import TenantHealth  # noqa: E402
from presence.linking import LinkState, SelectionMode  # noqa: E402
from scheduler.tick import GRAPH_BATCH_SIZE, run_tick  # noqa: E402
from sync.poll import run_poll, run_poll_many  # noqa: E402
from sync.ports import CollectingQueue  # noqa: E402
from tenants.changes import deep_merge  # noqa: E402
from tenants.service import create_tenant  # noqa: E402
from tests.support.query_counter import count_queries  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_CONFIGS = "1x10000,100x100,2000x25"
QUICK_CONFIGS = "1x2000,20x100,200x25"
TARGET_CPU_MS_PER_TENANT_CYCLE = 1.0  # for 2,000 x 25 (issue 14)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"configurations {QUICK_CONFIGS}, workers 1,2")
    parser.add_argument("--configs", default=None, help=f"TENANTSxUSERS,... (default {FULL_CONFIGS})")
    parser.add_argument("--workers", default=None, help="worker process counts (default 1,2,4)")
    parser.add_argument("--seconds", type=float, default=None, help="window (default 20 s, quick 8)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="every tenant's poll interval in seconds (default 1, the product's floor)")
    parser.add_argument("--flower-poll-tasks", action="store_true",
                        help="polls send Flower their task events (deployment setting; default off)")
    parser.add_argument("--worker-cpus", default=None,
                        help="CPUs to bind the workers to, e.g. 0; everything else of the stack (simulators, "
                             "web app, this harness) is bound to the other CPUs (default: nothing bound)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.configs = [tuple(int(x) for x in c.split("x")) for c in
                    (args.configs or (QUICK_CONFIGS if args.quick else FULL_CONFIGS)).split(",")]
    args.workers = [int(w) for w in (args.workers or ("1,2" if args.quick else "1,2,4")).split(",")]
    args.seconds = args.seconds or (8.0 if args.quick else 20.0)
    if args.worker_cpus is not None:
        args.worker_cpus = {int(cpu) for cpu in args.worker_cpus.split(",")}
        if not args.worker_cpus < os.sched_getaffinity(0):
            parser.error(f"--worker-cpus must leave CPUs for the rest, of {sorted(os.sched_getaffinity(0))}")
    return args


def add_tenants(stack: Stack, tenants: int, users: int, interval_s: float = 1.0) -> list[int]:
    """Creates the tenants through the tenant service (as `teamsconnect tenant add` does) and stores the
    links a directory sync would store (user k of tenant t = seed user t * users + k, linked by e-mail)
    in one bulk insert: here all tenants share ONE simulated PBX and Microsoft tenant, so each tenant's
    sync would read all of them (and the sync is not what this benchmark measures)."""
    ids = []
    with transaction(stack.runtime.sessions) as session:
        for k in range(tenants):
            selection = {"mode": SelectionMode.GROUP_PLUS_LISTED.value,
                         "starface_group_id": FIRST_GROUP_ID + k}
            definition = deep_merge(stack.tenant_definition(f"scale-{k}", bridge=False),
                                    {"selection": selection, "poll_interval_s": interval_s})
            ids.append(create_tenant(session, stack.runtime.box, definition).id)
    with transaction(stack.runtime.sessions) as session:
        session.execute(insert(UserLink), [
            {"tenant_id": tenant_id, "starface_account_id": stack.seeds.account(i),
             "login_id": stack.seeds.login(i),
             "email": f"user{i}@{stack.seeds.tenant['domain']}", "entra_object_id": stack.seeds.entra_id(i),
             "display_name": f"User {i}", "state": LinkState.LINKED.value}
            for t, tenant_id in enumerate(ids) for i in range(t * users, (t + 1) * users)])
    return ids


def polls_ok(stack: Stack) -> int:
    with transaction(stack.runtime.sessions) as session:
        return int(session.scalar(select(func.coalesce(func.sum(TenantHealth.polls_ok), 0))) or 0)


def poll_ages_s(stack: Stack) -> list[float]:
    now = utcnow()
    with transaction(stack.runtime.sessions) as session:
        stamps = session.scalars(select(TenantHealth.last_success_at)).all()
    return [(now - stamp).total_seconds() for stamp in stamps if stamp is not None]


def statements_per_tenant_cycle(stack: Stack, tenant_ids: list[int]) -> dict[str, Any]:
    """One cycle in this process: the real tick (collected), then the poll task bodies, statements
    counted; the tick's own statements are reported apart."""
    with transaction(stack.runtime.sessions) as session:
        session.execute(Tenant.__table__.update().values(next_poll_at=utcnow()))
    collected = CollectingQueue()
    with count_queries(stack.runtime.engine) as tick_counted:
        run_tick(stack.runtime.sessions, stack.runtime.coordination, collected, utcnow())
    packed = {tenant_id for task in collected.poll_tasks for tenant_id, _ in task}
    decided = CollectingQueue()
    with count_queries(stack.runtime.engine) as counted:
        for task in collected.poll_tasks:
            run_poll_many(stack.runtime, task, decided)
        for tenant_id, batch, _at, _interval in collected.polls:
            if tenant_id not in packed:
                run_poll(stack.runtime, tenant_id, batch, decided)
    polled = len({tenant_id for tenant_id, *_ in collected.polls}) or 1
    return {"poll_statements_per_tenant_cycle": round(counted.count / polled, 2),
            "tick_statements_per_tenant_cycle": round(tick_counted.count / polled, 3),
            "tenants_in_the_counted_cycle": polled,
            "poll_tasks": len(collected.poll_tasks) + len([p for p in collected.polls if p[0] not in packed]),
            "updates_decided": len(decided.applies)}


def measure(stack: Stack, tenants: int, users: int, workers: int, seconds: float,
            interval_s: float, worker_cpus: set[int] | None = None) -> dict[str, Any]:
    stack.start_worker("scale", concurrency=workers, queues="poll,apply,maintenance")
    roots = [p.pid for p in stack.workers]
    every_cpu = os.sched_getaffinity(0)
    others = [os.getpid(), *(p.pid for p in stack.services.values())]
    if worker_cpus:  # the workers get these CPUs to themselves, but for PostgreSQL and Redis
        pin(roots, worker_cpus)
        pin(others, every_cpu - worker_cpus)
    meter = CpuMeter({"workers": roots, **{n: [p.pid] for n, p in stack.services.items()}},
                     alone={"workers_main_process": roots})
    ticker = TickDriver(stack, 1.0)  # beat: one real tick every second, in a thread of this process
    requests_per_tenant_cycle = math.ceil(users / GRAPH_BATCH_SIZE)
    expected_per_cycle = tenants * requests_per_tenant_cycle
    with transaction(stack.runtime.sessions) as session:
        session.execute(Tenant.__table__.update().values(next_poll_at=utcnow()))
    ticker.start()
    try:
        start_ok = polls_ok(stack)
        wait_until(lambda: polls_ok(stack) >= start_ok + expected_per_cycle, timeout=120,
                   what="a first full cycle", interval=0.5)
        graph_before = stack.ms.count("getPresencesByUserId")
        ok_before = polls_ok(stack)
        meter.start()
        ages: list[float] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            ages.extend(poll_ages_s(stack))
            time.sleep(1.0)  # the sampling interval of the poll-lag probe
        elapsed = time.monotonic() - started
        cpu = meter.read()
        batches = polls_ok(stack) - ok_before
        graph = stack.ms.count("getPresencesByUserId") - graph_before
    finally:
        ticker.stop()
        if worker_cpus:
            pin(others, every_cpu)
    rss = [rss_mb(pid) for root in roots for pid in tree_of(root)]
    stack.stop_workers()
    tenant_cycles = batches / requests_per_tenant_cycle
    worker_cpu = cpu["workers"]
    return {
        "workers": workers,
        "worker_cpus": sorted(worker_cpus) if worker_cpus else None,
        "window_s": round(elapsed, 1),
        "tenant_cycles": round(tenant_cycles, 1),
        "tenant_cycles_per_s": round(tenant_cycles / elapsed, 1),
        "offered_tenant_cycles_per_s": round(tenants / interval_s, 1),
        "worker_cpu_s": worker_cpu,
        "worker_cpu_ms_per_tenant_cycle": round(1000 * worker_cpu / tenant_cycles, 3)
        if tenant_cycles else None,
        "worker_cpu_us_per_user_cycle": round(1e6 * worker_cpu / (tenant_cycles * users), 2)
        if tenant_cycles else None,
        "poll_lag_s": percentiles(ages),
        "graph_requests_per_cycle": round(graph / (tenant_cycles / tenants), 2) if tenant_cycles else None,
        "simulator_cpu_us_per_graph_request": round(1e6 * cpu["microsoft"] / graph, 1) if graph else None,
        # Worker CPU over the simulator's for the same requests: the figure to compare between windows.
        "worker_cpu_per_simulator_cpu": round(worker_cpu / cpu["microsoft"], 2) if cpu["microsoft"] else None,
        "expected_graph_requests_per_cycle": expected_per_cycle,
        "worker_rss_mb": rss,
        "cpu_s_by_process": cpu,
    }


def run_config(args: argparse.Namespace, tenants: int, users: int) -> dict[str, Any]:
    total = tenants * users
    with bench_database() as (database_url, _), \
            contextmanager(StackFactory(database_url, generate_key()).build)(
                tenant_seeds(total, tenants), web=True, processes=True,
                microsoft_args=["--presence-limit", "100000000"]) as stack:
        began = time.perf_counter()
        tenant_ids = add_tenants(stack, tenants, users, args.interval)
        progress(f"{tenants} x {users}: tenants created and synced in {time.perf_counter() - began:.1f} s")
        statements = statements_per_tenant_cycle(stack, tenant_ids)
        runs = []
        for workers in args.workers:
            result = measure(stack, tenants, users, workers, args.seconds, args.interval, args.worker_cpus)
            progress(f"{tenants} x {users}, {workers} worker(s): {result['tenant_cycles_per_s']} "
                     "tenant-cycles/s, "
                     f"{result['worker_cpu_ms_per_tenant_cycle']} ms worker CPU per tenant-cycle, poll lag "
                     f"p95 {result['poll_lag_s']['p95']} s")
            runs.append(result)
        return {"tenants": tenants, "users_per_tenant": users, "users": total, "interval_s": args.interval,
                **statements, "runs": runs}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for config in results:
        label = f"{config['tenants']} x {config['users_per_tenant']}"
        workers = [r["workers"] for r in config["runs"]]
        left.plot(workers, [r["tenant_cycles_per_s"] for r in config["runs"]], marker="o", label=label)
        right.plot(workers, [r["worker_cpu_ms_per_tenant_cycle"] for r in config["runs"]], marker="o",
                   label=label)
    left.set(xlabel="worker processes", ylabel="tenant-cycles / s", title="throughput (1 s cadence)")
    right.set(xlabel="worker processes", ylabel="worker CPU ms / tenant-cycle", yscale="log",
              title="cost per tenant-cycle")
    right.axhline(TARGET_CPU_MS_PER_TENANT_CYCLE, color="tab:green", linestyle=":",
                  label="target (2000 x 25)")
    for axis in (left, right):
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    pass_settings({"TEAMSCONNECT_FLOWER_POLL_TASKS": "true" if args.flower_poll_tasks else None})
    saved = os.dup(1)
    os.dup2(2, 1)  # worker banners and stray prints go to stderr; stdout carries only the JSON
    began = time.monotonic()
    results = []
    for tenants, users in args.configs:
        results.append(run_config(args, tenants, users))
        write_json({"configs": results, "partial": True}, args.results_dir / "scale.json")
    output = {
        "configs": results,
        "quick": args.quick,
        "flower_poll_tasks": args.flower_poll_tasks,
        "method": __doc__.split("\n\n")[1].strip() if __doc__ else "",
        "machine": this_machine(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
    }
    write_json(output, args.results_dir / "scale.json")
    plot(results, args.results_dir / "scale.png")
    os.dup2(saved, 1)
    sys.stdout.write(json.dumps(output) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
