"""Chaos suite: faults during a burst of Teams changes, on real processes the suite starts and kills.

    python bench/chaos.py [--quick] [--only worker_kill,redis_restart] [--changes 2000] [--outage NAME=S]

Starts its OWN redis-server (append-only file, as in compose/) and its OWN PostgreSQL cluster (initdb in a
temporary folder, trust auth, free ports on 127.0.0.1), so it can crash and restart them. Each scenario
gets a fresh database and stack (both simulators over real HTTP, two Celery worker processes, the web app
receiving the PBX's signed webhooks) and runs the same script: N users start a Teams call at once; once a
tenth of the changes has landed the fault is injected, a few STARFACE calls are made (half of them end
again), the fault is held for its duration and lifted; then the suite waits until every change is applied
and every Teams presence matches the STARFACE calls, lets two more poll cycles run and counts.

Figures per scenario: changes expected / applied / lost (ChangeLog rows, one per user, cause
teams:InACall); duplicate writes (phoneconfig PUTs and setChatStatus calls in the STARFACE simulator's
request log beyond the ChangeLog rows of the same account and field; requests answered by an injected
fault are not writes); STARFACE -> Teams events lost (a user still on a STARFACE call without our Teams
session, or one who hung up still with one); seconds from recovery to convergence; and whether it
converged within bound = the fault-free time of the same burst (baseline scenario) + the outage + two poll
cycles, all counted from the burst's start.

Progress goes to stderr, the table to stderr and <results-dir>/chaos.md, ONE JSON object to stdout and
<results-dir>/chaos.json. Exit code 0 when every scenario ran (also when it found losses: they are
results); 1 when a scenario could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import bench.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.chaos_infra import PostgresCluster, RedisProcess  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAMES = ["baseline", "worker_kill", "redis_restart", "postgres_restart", "starface_down", "graph_5xx",
         "graph_429_storm", "token_expiry", "key_rotation", "webhook_chaos", "two_beats"]
FULL_OUTAGES = {"worker_kill": 30.0, "redis_restart": 20.0, "postgres_restart": 20.0, "starface_down": 120.0,
                "graph_5xx": 60.0, "graph_429_storm": 30.0, "webhook_chaos": 5.0}
#: The quick mode's PBX limits (a larger STARFACE than the product's defaults of 4 in flight and 20 per
#: second assume): at the defaults, applying the burst (5 changes/s) took 41 of each scenario's ~60 s.
#: The burst still outlasts the point where the fault is injected (after a tenth has landed).
QUICK_PBX_IN_FLIGHT, QUICK_PBX_PER_S = 8, 80.0
QUICK_OUTAGES = {"worker_kill": 10.0, "redis_restart": 10.0, "postgres_restart": 10.0, "starface_down": 15.0,
                 "graph_5xx": 10.0, "graph_429_storm": 10.0, "webhook_chaos": 2.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 changes, 5 STARFACE calls per group, 10-15 s outages, a larger PBX's "
                        "limits (the test runs this)")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios (of {', '.join(NAMES)}); "
                        "the baseline always runs first")
    parser.add_argument("--changes", type=int, default=None, help="Teams changes in the burst (default 2000)")
    parser.add_argument("--events", type=int, default=None,
                        help="STARFACE calls per group (stay on / hang up; default 25, quick 5)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker (default 2)")
    parser.add_argument("--cadence", type=float, default=2.0, help="the tenant's poll interval (default 2 s)")
    parser.add_argument("--outage", action="append", default=[], metavar="NAME=SECONDS",
                        help="override one scenario's outage duration (repeatable)")
    parser.add_argument("--pbx-in-flight", type=int, default=None,
                        help="STARFACE requests in flight per PBX (deployment setting; product default 4, "
                        f"quick {QUICK_PBX_IN_FLIGHT})")
    parser.add_argument("--pbx-per-s", type=float, default=None,
                        help="STARFACE requests per second per PBX (deployment setting; product default 20, "
                        f"quick {QUICK_PBX_PER_S:.0f})")
    parser.add_argument("--max-converge", type=float, default=None,
                        help="longest wait for convergence after recovery (default 600 s, quick 180 s)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.changes = args.changes or (200 if args.quick else 2000)
    args.events = args.events if args.events is not None else (5 if args.quick else 25)
    args.max_converge = args.max_converge or (180.0 if args.quick else 600.0)
    if args.quick:
        args.pbx_in_flight = args.pbx_in_flight or QUICK_PBX_IN_FLIGHT
        args.pbx_per_s = args.pbx_per_s or QUICK_PBX_PER_S
    outages = dict(QUICK_OUTAGES if args.quick else FULL_OUTAGES)
    for item in args.outage:
        name, _, seconds = item.partition("=")
        if name not in NAMES or not seconds:
            parser.error(f"--outage {item}: expected NAME=SECONDS with NAME one of {', '.join(NAMES)}")
        outages[name] = float(seconds)
    args.outages = outages
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in NAMES]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    args.scenarios = ["baseline"] + [n for n in NAMES[1:] if not chosen or n in chosen]
    if args.changes < 10 or args.workers < 2:
        parser.error("need --changes >= 10 and --workers >= 2 (one is killed)")
    return args


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = ["| scenario | outage s | changes expected | applied | lost | duplicate writes | "
             "STARFACE->Teams events lost | s to converge after recovery | bound s | within bound |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['scenario']} | | | | | | | | | failed: {r['error'][:80]} |")
            continue
        events = f"{r['events_lost'] + r['events_stale_session']} of {r['events_expected']}"
        after = r["seconds_to_converge_after_recovery"]
        lines.append(
            f"| {r['title']} | {r['outage_s']:.0f} | {r['changes_expected']:,} | {r['changes_applied']:,} | "
            f"{r['changes_lost']} | {r['duplicate_writes']} | {events} | "
            f"{'-' if after is None else f'{after:.1f}'} | {r['bound_s']:.0f} | "
            f"{_yes(r['converged_within_bound'])} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    redis_server = RedisProcess()
    postgres = PostgresCluster()
    results: list[dict[str, Any]] = []
    try:
        redis_server.start()
        postgres.init()
        # embedded.stack reads these at import: everything below runs on the suite's own Redis.
        os.environ["TEAMSCONNECT_TEST_BROKER_URL"] = redis_server.url(13)
        os.environ["TEAMSCONNECT_TEST_COORDINATION_URL"] = redis_server.url(12)
        from bench.chaos_scenarios import BY_NAME, Params, run_scenario
        from bench.harness import pass_settings, progress

        pass_settings({"TEAMSCONNECT_STARFACE_MAX_IN_FLIGHT": args.pbx_in_flight,
                       "TEAMSCONNECT_STARFACE_MAX_PER_S": args.pbx_per_s})

        params = Params(changes=args.changes, events=args.events, workers=args.workers,
                        concurrency=args.concurrency, cadence_s=args.cadence, outages=args.outages,
                        max_converge_s=args.max_converge)
        progress(f"chaos: Redis on {redis_server.port}, PostgreSQL on {postgres.port}; "
                 f"scenarios {', '.join(args.scenarios)}")
        baseline_s: float | None = None
        for name in args.scenarios:
            progress(f"=== {name}")
            try:
                result = run_scenario(BY_NAME[name], params, redis_server, postgres, baseline_s)
            except Exception as exc:
                progress(f"{name} failed: {traceback.format_exc()}")
                result = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"}
                if not redis_server.ping():
                    redis_server.start()
                if not postgres.ready():
                    postgres.start()
            if name == "baseline" and result.get("seconds_trigger_to_converged") is not None:
                baseline_s = result["seconds_trigger_to_converged"]
                result["bound_s"] = baseline_s + 2 * args.cadence
                result["converged_within_bound"] = True
            results.append(result)
            # Written after every scenario, so an interrupted run keeps what it measured.
            (args.results_dir / "chaos.partial.json").write_text(json.dumps(results, indent=2) + "\n")
            progress(f"{name}: " + json.dumps({k: result.get(k) for k in (
                "changes_applied", "changes_lost", "duplicate_writes", "events_lost", "events_stale_session",
                "seconds_to_converge_after_recovery", "converged", "converged_within_bound",
                "error")}))
    finally:
        postgres.close()
        redis_server.close()
    return {
        "quick": args.quick,
        "changes": args.changes,
        "starface_calls": 2 * args.events,
        "workers": f"{args.workers} Celery worker processes, prefork pool of {args.concurrency} each",
        "cadence_s": args.cadence,
        "pbx_limits": {"max_in_flight": args.pbx_in_flight or "product default",
                       "max_per_s": args.pbx_per_s or "product default"},
        "scenarios": results,
        "all_clean": all("error" not in r and r["changes_lost"] == 0 and r["duplicate_writes"] == 0
                         and r["events_lost"] == 0 and r["events_stale_session"] == 0 and r["converged"]
                         for r in results),
        "method": __doc__.split("\n\n", 2)[2].split("\n\nProgress")[0].replace("\n", " "),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # worker banners and stray prints go to stderr; stdout carries only the JSON
    out = os.fdopen(saved, "w")
    try:
        result = run(args)
        table = markdown_table(result["scenarios"])
        print(table, file=sys.stderr)
        (args.results_dir / "chaos.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.results_dir / "chaos.md").write_text(
            f"Chaos suite, {result['changes']:,} Teams changes per burst, "
            f"{result['starface_calls']} STARFACE calls, {result['workers']}, "
            f"poll every {result['cadence_s']:.0f} s, PBX limits {result['pbx_limits']['max_in_flight']} in "
            f"flight and {result['pbx_limits']['max_per_s']} per s "
            f"({result['finished_at']}, {result['duration_s']:.0f} s):\n\n"
            + table)
        sys.stdout.flush()
        out.write(json.dumps(result) + "\n")
    finally:
        out.close()
        os.dup2(2, 1)
    return 0 if all("error" not in r for r in result["scenarios"]) else 1


if __name__ == "__main__":
    sys.exit(main())
