"""Steady state: the poll hot path with nothing changing, timed in one process, and its profile.

Method: the benchmark process itself plays one worker process. Each cycle makes the tenants due, runs
the real scheduler tick (`run_tick`) with an enqueue that collects the batches instead of queueing them,
then calls `sync.poll.run_poll` for every batch in turn - the body of the poll task, against the
Microsoft simulator over HTTPS, PostgreSQL and Redis. Nothing changes, so nothing may be enqueued. The
worker processes are idle meanwhile (no beat runs), so the process has a core to itself; the simulators
answer from threads of the same process, and their CPU time shows up in the wall time but not in the
thread CPU time, which is reported separately.
"""

from __future__ import annotations

import cProfile
import io
import math
import pstats
import time
from pathlib import Path
from typing import Any

from bench.harness import linked_counts, make_due
from embedded.stack import Stack
from embedded.waiting import wait_until
from models.base import utcnow
from scheduler.tick import GRAPH_BATCH_SIZE, run_tick
from sync.poll import run_poll
from sync.ports import CollectingQueue, TaskQueue
from tests.support.query_counter import count_queries

METHOD = ("run_poll timed in ONE process (the benchmark process acting as a worker process) over every "
          "batch the real scheduler tick hands out, for several cycles with no presence changes; "
          "Graph requests counted by the Microsoft simulator; SQL statements counted per run_poll call "
          "(tests/support/query_counter.py)")

Batches = list[tuple[int, list[tuple[int, str]]]]


def tick_batches(stack: Stack, tenant_ids: list[int]) -> Batches:
    """One real tick over the due tenants, collecting the poll batches it would enqueue."""
    make_due(stack, tenant_ids)
    collected = CollectingQueue()
    run_tick(stack.runtime.sessions, stack.runtime.coordination, collected, utcnow())
    return [(tenant_id, batch) for tenant_id, batch, _at, _interval in collected.polls]


def warm_up(stack: Stack, tenant_ids: list[int], real_queue: TaskQueue, max_cycles: int = 5) -> int:
    """Polls until a cycle decides no update, so the measured cycles start from a settled state.

    The first cycle builds the clients (MSAL token, connection pools); updates it decides (users whose
    first observation differs from the empty applied state) are enqueued for the workers to apply.
    Returns the cycles it took.
    """
    for cycle in range(1, max_cycles + 1):
        decided = CollectingQueue()
        for tenant_id, batch in tick_batches(stack, tenant_ids):
            run_poll(stack.runtime, tenant_id, batch, decided)
        for update in decided.applies:
            real_queue.apply(*update)
        if not decided.applies:
            return cycle
        time.sleep(1.0)  # let the workers apply what the cycle found; the next cycle checks again
    raise RuntimeError(f"steady state not reached: updates still decided after {max_cycles} cycles")


def measure_steady(stack: Stack, tenant_ids: list[int], cycles: int) -> dict[str, Any]:
    """Times run_poll over ``cycles`` full cycles (see the module docstring)."""
    engine = stack.runtime.engine
    enqueued = CollectingQueue()  # run_poll's updates (none are expected in steady state)
    wall = cpu = 0.0
    records = 0
    batch_seconds: list[float] = []
    queries: list[int] = []
    skipped: list[dict[str, Any]] = []
    graph_before = stack.ms.count("getPresencesByUserId")
    for _ in range(cycles):
        for tenant_id, batch in tick_batches(stack, tenant_ids):
            with count_queries(engine) as counted:
                started, started_cpu = time.perf_counter(), time.thread_time()
                summary = run_poll(stack.runtime, tenant_id, batch, enqueued)
                elapsed = time.perf_counter() - started
                cpu += time.thread_time() - started_cpu
            wall += elapsed
            batch_seconds.append(elapsed)
            queries.append(counted.count)
            if "skipped" in summary or "failed" in summary:
                skipped.append(summary)
            else:
                records += summary["presences"]
    graph_requests = stack.ms.count("getPresencesByUserId") - graph_before
    expected = sum(math.ceil(n / GRAPH_BATCH_SIZE) for n in linked_counts(stack, tenant_ids).values())
    batch_seconds.sort()
    return {
        "method": METHOD,
        "records_per_s_per_worker": round(records / wall) if wall else None,
        "records_per_cpu_s": round(records / cpu) if cpu else None,
        "cycles": cycles,
        "records": records,
        "graph_requests_per_cycle": graph_requests / cycles,
        "expected_requests_per_cycle": expected,
        "db_queries_per_batch": max(queries) if queries else None,
        "db_queries_per_batch_min": min(queries) if queries else None,
        "batch_ms_p50": round(1000 * batch_seconds[len(batch_seconds) // 2], 1) if batch_seconds else None,
        "batch_ms_max": round(1000 * batch_seconds[-1], 1) if batch_seconds else None,
        "updates_enqueued": len(enqueued.applies),
        "batches_skipped": skipped,
    }


def profile_steady(stack: Stack, tenant_ids: list[int], cycles: int, path: Path) -> list[str]:
    """cProfile of run_poll over ``cycles`` cycles; writes the top 15 by cumulative and by own time.
    Returns the top lines by own time (for the summary)."""
    profiler = cProfile.Profile()
    enqueued = CollectingQueue()
    batches_run = 0
    for _ in range(cycles):
        batches = tick_batches(stack, tenant_ids)
        profiler.enable()
        for tenant_id, batch in batches:
            run_poll(stack.runtime, tenant_id, batch, enqueued)
        profiler.disable()
        batches_run += len(batches)
    out = io.StringIO()
    out.write(f"cProfile of sync.poll.run_poll: {cycles} cycles, {batches_run} batches of <= "
              f"{GRAPH_BATCH_SIZE} users, no presence changes (bench/steady.py)\n\n")
    out.write("== top 15 by cumulative time ==\n")
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(15)
    out.write("\n== top 15 by own time (tottime) ==\n")
    own = io.StringIO()
    pstats.Stats(profiler, stream=own).strip_dirs().sort_stats("tottime").print_stats(15)
    out.write(own.getvalue())
    path.write_text(out.getvalue())
    lines = [line for line in own.getvalue().splitlines() if line.strip() and line.strip()[0].isdigit()]
    return lines[:5]


def measure_steady_workers(stack: Stack, tenant_ids: list[int], driver: Any, meter: Any,
                           seconds: float) -> dict[str, Any]:
    """Steady state as it runs in production: beat ticking (the harness's tick driver), the poll tasks in
    the worker processes, nothing changing. Worker CPU is read from the worker processes (/proc); the
    records are the presences Graph answered in the window (requests x users / requests per cycle)."""
    counts = linked_counts(stack, tenant_ids)
    users = sum(counts.values())
    per_cycle = sum(math.ceil(n / GRAPH_BATCH_SIZE) for n in counts.values())
    make_due(stack, tenant_ids)
    driver.start()
    try:
        first = stack.ms.count("getPresencesByUserId")
        wait_until(lambda: stack.ms.count("getPresencesByUserId") >= first + per_cycle, timeout=30,
                   what="a first polled cycle", interval=0.1)
        before = stack.ms.count("getPresencesByUserId")
        meter.start()
        time.sleep(seconds)  # the measurement window itself
        cpu = meter.read()
        requests = stack.ms.count("getPresencesByUserId") - before
    finally:
        driver.stop()
    cycles = requests / per_cycle
    records = cycles * users
    worker_cpu = cpu["workers"]
    return {
        "window_s": seconds,
        "cycles": round(cycles, 2),
        "records": round(records),
        "records_per_worker_cpu_s": round(records / worker_cpu) if worker_cpu else None,
        "worker_cpu_ms_per_tenant_cycle": round(1000 * worker_cpu / (cycles * len(tenant_ids)), 3)
        if cycles else None,
        # The host's yardstick (as in bench/scale.py): the same simulator code for the same requests.
        "simulator_cpu_us_per_graph_request": round(1e6 * cpu["microsoft"] / requests, 1)
        if requests and "microsoft" in cpu else None,
        "worker_cpu_per_simulator_cpu": round(worker_cpu / cpu["microsoft"], 2)
        if cpu.get("microsoft") else None,
        "cpu_s_by_process": cpu,
        "method": ("beat ticking every 1 s (the harness's tick driver), poll tasks in the worker processes, "
                   "no presence changes; worker CPU = user+system time of the poll/apply worker process "
                   "trees from /proc over the window; records = getPresencesByUserId requests answered in "
                   "the window x users / requests per cycle; the tick runs in the harness process, whose "
                   "CPU is reported apart (cpu_s_by_process.harness)"),
    }
