"""The chaos scenarios and the one runner they share (see bench/chaos.py for the method).

A scenario is a fault with two halves: ``inject`` (right after the burst has started landing) and
``recover`` (after the outage was held for its duration). Everything else - the stack, the 2,000-change
burst, the STARFACE calls whose Teams presence must follow, convergence, the write accounting - is the
runner's, identical for every scenario. Import only after bench.chaos has set the Redis URLs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from sqlalchemy import func, select

from bench.chaos_infra import PostgresCluster, RedisProcess
from bench.chaos_relay import WebhookRelay
from bench.chaos_stack import (
    chaos_stack,
    duplicate_writes,
    poll_requests,
    queued_tasks,
    rebuild_runtime,
    starface_writes,
    start_beat,
    start_worker,
    terminate,
    wait_polls,
    warm_shutdown,
    write_trails,
)
from bench.harness import TickDriver, make_due, progress, teams_action
from embedded.stack import COORDINATION_URL, Stack
from embedded.waiting import wait_until
from models import AppliedState, ChangeLog, migrate
from models.base import utcnow
from models.crypto import SecretBox, generate_key
from models.db import transaction
from models.secrets import rotate_all
from scheduler.tick import GRAPH_BATCH_SIZE
from simulators.paired import paired_seeds
from tenants.service import load_tenant
from workers.app import celery_app

CALL_CAUSE = "teams:InACall"
REDBEAT_LOCK = "teamsconnect:redbeat:lock"  # redbeat: key_prefix + ":lock"
STANDBY_WAIT_S = 30 + 300 + 90
SAMPLE_S = 0.25  # sampling interval of progress checks (each has a deadline)


@dataclass
class Params:
    changes: int
    events: int  # STARFACE calls per group (one group stays on the call, one hangs up)
    workers: int
    concurrency: int
    cadence_s: float
    outages: dict[str, float]
    max_converge_s: float


@dataclass
class Run:
    """One scenario on its own stack: the state the runner and the fault functions share."""

    name: str
    params: Params
    stack: Stack
    redis_server: RedisProcess
    postgres: PostgresCluster
    tenant_id: int = 0
    change_users: list[int] = field(default_factory=list)
    stay_users: list[int] = field(default_factory=list)
    hangup_users: list[int] = field(default_factory=list)
    driver: TickDriver | None = None
    beats: list[Any] = field(default_factory=list)
    workers: list[Any] = field(default_factory=list)
    excluded: list[tuple[int, int]] = field(default_factory=list)  # STARFACE log ranges answered by a fault
    notes: dict[str, Any] = field(default_factory=dict)
    recovered_at: float | None = None
    relay: WebhookRelay | None = None
    tokens_expired_at: int | None = None  # STARFACE request log length when its tokens were expired

    @property
    def outage_s(self) -> float:
        return self.params.outages.get(self.name, 0.0)

    def start_worker(self, name: str) -> Any:
        worker = start_worker(self.stack, name, self.params.concurrency)
        self.workers.append(worker)
        return worker

    def fire_events(self) -> None:
        """STARFACE calls: one group rings and answers (Teams must show our session), the other rings,
        answers and hangs up (Teams must show none)."""
        for index in self.stay_users:
            login = self.stack.seeds.login(index)
            self.stack.pbx.ring(login)
            self.stack.pbx.answer(login)
        for index in self.hangup_users:
            login = self.stack.seeds.login(index)
            self.stack.pbx.ring(login)
            self.stack.pbx.answer(login)
            self.stack.pbx.hang_up(login)


# --- the faults -----------------------------------------------------------------------------------------


def _hold(run: Run, seconds: float) -> None:
    """Keeps the outage up for ``seconds`` (a duration, not a synchronisation), reporting progress."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 5.0))
        if left > 5.0:
            progress(f"{run.name}: outage, {max(0.0, end - time.monotonic()):.0f} s left")


def _nothing(run: Run) -> None:
    return None


def _kill_worker(run: Run) -> None:
    victim = run.workers[0]
    run.stack.kill_worker(victim)
    run.notes["killed_worker_pid"] = victim.pid


def _restart_worker(run: Run) -> None:
    _hold(run, run.outage_s)
    run.start_worker("w1-restarted")


def _kill_redis(run: Run) -> None:
    run.redis_server.kill()


def _restart_redis(run: Run) -> None:
    _hold(run, run.outage_s)
    run.redis_server.start()


def _crash_postgres(run: Run) -> None:
    run.postgres.crash()


def _restart_postgres(run: Run) -> None:
    _hold(run, run.outage_s)
    run.postgres.start()


def _starface_down(run: Run) -> None:
    before = len(run.stack.pbx.request_log())
    run.stack.pbx.inject_fault("/*", status=503, count=-1)
    run.notes["log_edges"] = [(before, len(run.stack.pbx.request_log()))]


def _starface_up(run: Run) -> None:
    """The request log carries no status: every request between the fault's start and its end (taken
    wide, from just before injecting to just after clearing) is left out of the write count; the writes
    in the two edge windows, where a request may or may not have been answered by the fault, are
    reported as ``starface_writes_at_fault_edges``."""
    _hold(run, run.outage_s)
    before = len(run.stack.pbx.request_log())
    run.stack.pbx.clear_faults()
    edges = [*run.notes.pop("log_edges"), (before, len(run.stack.pbx.request_log()))]
    run.excluded.append((edges[0][0], edges[1][1]))
    log = run.stack.pbx.request_log()
    run.notes["starface_requests_answered_503"] = edges[1][0] - edges[0][1]
    dnd, chat = starface_writes([log[n] for a, b in edges for n in range(a, b)])
    run.notes["starface_writes_at_fault_edges"] = sum(dnd.values()) + sum(chat.values())


GRAPH_ROUTES = ("getPresencesByUserId", "setPresence", "clearPresence")
STORM_RETRY_AFTER = (0.3, 0.7, 1.4)
MANY = 10_000_000


def _graph_5xx(run: Run) -> None:
    run.notes["graph_requests_before"] = run.stack.ms.requests()["total"]
    run.stack.ms.add_fault("*", 503, count=MANY)


#: The longest a Graph fault is held beyond its duration while no Graph request has met it yet.
GRAPH_FAULT_MAX_EXTRA_S = 120.0


def _graph_back(run: Run) -> None:
    """Lifts the Graph fault after its duration, but not before at least one Graph request met it: on a
    loaded machine a 10 s window can pass without a poll (they queue behind the burst's updates), and a
    fault nothing met tests nothing. The extra wait counts as outage."""
    _hold(run, run.outage_s)
    before = run.notes["graph_requests_before"]
    wait_until(lambda: any(e["status"] in (429, 503) for e in run.stack.ms.requests(since=before)["entries"]),
               timeout=GRAPH_FAULT_MAX_EXTRA_S, interval=SAMPLE_S, what="a Graph request to meet the fault")
    run.stack.ms.clear_faults()
    run.notes["graph_requests_during_outage"] = (run.stack.ms.requests()["total"]
                                                 - run.notes.pop("graph_requests_before"))


def _storm_setup(run: Run) -> None:
    run.stack.ms.configure(fractionalRetryAfter=True)


def _storm(run: Run) -> None:
    run.notes["graph_requests_before"] = run.stack.ms.requests()["total"]
    for route in GRAPH_ROUTES:
        for retry_after in STORM_RETRY_AFTER:  # faults are taken in order: the first one answers
            run.stack.ms.add_fault(route, 429, retry_after=retry_after, count=MANY // 3)
    run.notes["retry_after_s"] = STORM_RETRY_AFTER[0]


#: How long the Microsoft simulator's tokens live in this scenario. MSAL hands a cached token out until 5
#: minutes before its end, so a worker keeps sending one for 540 s after it got it: longer than warm-up and
#: burst may take before the fault (at most 360 s by their timeouts), so every worker that has a token
#: still sends it after the clock jump. A 6-minute token was kept for 60 s only; on a slow machine the last
#: token could be older than that at the fault, the worker fetched a fresh one and Graph never said 401.
CHAOS_TOKEN_LIFETIME_S = 840


def _token_setup(run: Run) -> None:
    run.stack.ms.configure(tokenLifetime=CHAOS_TOKEN_LIFETIME_S)
    run.stack.runtime.close_clients()  # the harness's client signs in again, under the chaos lifetime
    _read_presence_as_the_harness(run)


def _read_presence_as_the_harness(run: Run) -> None:
    """One presence read through the product's own Graph client in this process (see _expire_tokens)."""
    with transaction(run.stack.runtime.sessions) as session:
        tenant = load_tenant(session, run.tenant_id)
    assert tenant is not None
    run.stack.runtime.graph(tenant).get_presences([run.stack.seeds.entra_id(0)])


def _own_ports_to(port: int) -> set[int]:
    """The local ports of this process's open TCP connections to ``port`` on this machine (/proc): the
    Microsoft simulator logs each request's client port, which tells the harness's requests apart from
    the workers' (all connect from 127.0.0.1)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def _expire_tokens(run: Run) -> None:
    """Every token issued so far expires for Graph while MSAL still trusts it - the case the 401 retry must
    handle. The jump (841 s) stays below the 15-minute Teams sessions we hold; none exist before the fault.

    Which worker process sends a stale token afterwards is up to Celery's prefork pool: a child busy with
    the PBX-bound burst's applies may not read Graph again before the run converges, while children without
    a token sign in anew (CI saw a run with no 401). So the harness, which signed in under the chaos
    lifetime in the setup, reads once with its stale token through the product's own client: Graph answers
    401 for certain, and that client must sign in again and read. The workers' 401s are counted apart."""
    advance_s = CHAOS_TOKEN_LIFETIME_S + 1
    run.notes["graph_tokens_before"] = run.stack.ms.count("token")
    run.notes["graph_clock_advanced_s"] = advance_s
    run.stack.ms.advance_clock(advance_s)
    before = run.stack.ms.requests(route="getPresencesByUserId")["total"]
    _read_presence_as_the_harness(run)
    harness = _own_ports_to(urlsplit(run.stack.microsoft.base_url).port or 443)  # kept alive after the read
    refused = [entry for entry in run.stack.ms.requests(route="getPresencesByUserId", since=before)["entries"]
               if entry["status"] == 401]
    to_harness = sum(1 for entry in refused if entry["connection"] in harness)
    run.notes["graph_401_to_the_harness"] = to_harness
    run.notes["graph_401_to_the_workers_meanwhile"] = len(refused) - to_harness
    # STARFACE answers a request with an expired authToken 401: such a PUT is no write (see _not_writes).
    run.tokens_expired_at = len(run.stack.pbx.request_log())
    run.notes["starface_tokens_expired"] = run.stack.pbx.expire_tokens()


def _rolling_restart(run: Run, keys: str) -> None:
    """New worker processes with ``keys`` first, then the old ones get a warm shutdown (SIGTERM to the main
    process, as `docker compose` stops a container)."""
    run.stack.env["TEAMSCONNECT_ENCRYPTION_KEYS"] = keys
    old = [w for w in run.workers if w.poll() is None]
    generation = run.notes.get("generation", 0) + 1
    run.notes["generation"] = generation
    for k in range(len(old)):
        run.start_worker(f"w{k}-keys{generation}")
    rebuild_runtime(run.stack)
    for worker in old:
        warm_shutdown(worker)


def _rotate_key(run: Run) -> None:
    old = run.stack.env["TEAMSCONNECT_ENCRYPTION_KEYS"]
    new = generate_key()
    _rolling_restart(run, f"{new},{old}")  # 1. every process can read both keys, writes with the new one
    with transaction(run.stack.runtime.sessions) as session:  # 2. `teamsconnect keys rotate`
        run.notes["secrets_rotated"] = rotate_all(session, SecretBox([new, old]))
    _rolling_restart(run, new)  # 3. the old key is gone


def _relay_setup(run: Run) -> None:
    delay = max(0.5, run.outage_s)
    target = f"{run.stack.web_url}/hooks/starface/{run.tenant_id}"
    run.relay = WebhookRelay(target, max_delay_s=delay, duplicate_rate=0.5).start()
    run.stack.pbx.set_webhook(run.relay.url, duplicate_rate=0.5)  # the bridge's own at-least-once, too


def _relay_drained(run: Run) -> None:
    relay = run.relay
    assert relay is not None
    wait_until(lambda: relay.pending == 0 and not run.stack.pbx.webhooks()["pending"],
               timeout=60 + 4 * run.outage_s, interval=SAMPLE_S, what="the relay to deliver everything")
    run.notes.update({"relay_received": relay.received, "relay_duplicated": relay.duplicated,
                      "relay_forwarded": relay.forwarded, "relay_failed": relay.failed,
                      "bridge_duplicates": sum(1 for a in run.stack.pbx.webhooks()["attempts"]
                                               if a["duplicate"])})


def _lock_token() -> bytes | None:
    client = redis.Redis.from_url(COORDINATION_URL)
    try:
        return client.get(REDBEAT_LOCK)
    finally:
        client.close()


def _beats_setup(run: Run) -> None:
    log = os.path.join(tempfile.gettempdir(), f"chaos-beat-{os.getpid()}.log")
    first = start_beat(run.stack, log)
    run.beats.append(first)
    wait_until(_lock_token, timeout=60, interval=SAMPLE_S, what="the first beat to take the redbeat lock")
    run.beats.append(start_beat(run.stack, log))  # the standby: waits for the lock
    run.notes["beat_log"] = log


def _kill_active_beat(run: Run) -> None:
    holder = run.beats[0]  # it took the lock before the standby started
    run.notes["lock_before"] = (_lock_token() or b"").decode()
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)


def _standby_takes_over(run: Run) -> None:
    before = run.notes.pop("lock_before")
    # redbeat's standby retries the lock every beat_max_loop_interval (Celery's default: 300 s) after its
    # lock timeout (30 s): wait for that, plus a margin.
    wait_until(lambda: (token := _lock_token()) is not None and token.decode() != before,
               timeout=STANDBY_WAIT_S, interval=SAMPLE_S, what="the standby beat to take the redbeat lock")
    start = poll_requests(run.stack)
    wait_until(lambda: poll_requests(run.stack) > start, timeout=60, interval=SAMPLE_S,
               what="a poll scheduled by the standby beat")
    run.notes["standby_alive"] = run.beats[1].poll() is None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    inject: Callable[[Run], None]
    recover: Callable[[Run], None]
    setup: Callable[[Run], None] = _nothing
    beat: bool = False  # two real celery beat processes tick instead of the in-process tick driver


SCENARIOS = [
    Scenario("baseline", "no fault (reference for the bound)", _nothing, _nothing),
    Scenario("worker_kill", "worker kill -9 during the burst", _kill_worker, _restart_worker),
    Scenario("redis_restart", "Redis crash + restart (AOF)", _kill_redis, _restart_redis),
    Scenario("postgres_restart", "PostgreSQL crash + restart", _crash_postgres, _restart_postgres),
    Scenario("starface_down", "STARFACE unreachable (503 on everything)", _starface_down, _starface_up),
    Scenario("graph_5xx", "Graph answers 503", _graph_5xx, _graph_back),
    Scenario("graph_429_storm", "429 storm, fractional Retry-After", _storm, _graph_back, _storm_setup),
    Scenario("token_expiry", "Graph + STARFACE tokens expire mid-run", _expire_tokens, _nothing,
             _token_setup),
    Scenario("key_rotation", "encryption key rotated (rolling restarts)", _rotate_key, _nothing),
    Scenario("webhook_chaos", "webhooks duplicated, reordered, delayed", _nothing, _relay_drained,
             _relay_setup),
    Scenario("two_beats", "two beats, active one kill -9", _kill_active_beat, _standby_takes_over,
             _beats_setup, beat=True),
]
BY_NAME = {s.name: s for s in SCENARIOS}


# --- what the runner measures ---------------------------------------------------------------------------


def _applied(run: Run, since_id: int) -> int:
    with transaction(run.stack.runtime.sessions) as session:
        return session.scalar(select(func.count(func.distinct(ChangeLog.user_link_id))).where(
            ChangeLog.tenant_id == run.tenant_id, ChangeLog.target == "starface",
            ChangeLog.cause == CALL_CAUSE, ChangeLog.id > since_id)) or 0


def _safe_applied(run: Run, since_id: int) -> int | None:
    try:
        return _applied(run, since_id)
    except Exception:  # the database may be down during the outage: no sample, not an error
        return None


def _has_session(presence: dict[str, Any]) -> bool:
    return bool(presence.get("sessions", {}).get("apps"))


def _wrong_sessions(run: Run) -> tuple[list[int], list[int]]:
    """(users on a STARFACE call without our Teams session, users who hung up but still have one)."""
    missing = [i for i in run.stay_users if not _has_session(run.stack.presence(i))]
    stale = [i for i in run.hangup_users if _has_session(run.stack.presence(i))]
    return missing, stale


def _safe_converged(run: Run, since_id: int) -> bool:
    applied = _safe_applied(run, since_id)
    if applied is None or applied < len(run.change_users):
        return False
    missing, stale = _wrong_sessions(run)
    return not missing and not stale


def _graph_history(run: Run, indexes: list[int]) -> dict[str, list[str]]:
    """For users whose Teams presence ended wrong: their setPresence / clearPresence requests in order."""
    wanted = {run.stack.seeds.entra_id(i): run.stack.seeds.login(i) for i in indexes}
    history: dict[str, list[str]] = {login: [] for login in wanted.values()}
    entries = [e for route in ("setPresence", "clearPresence")
               for e in run.stack.ms.requests(route)["entries"]]
    for entry in sorted(entries, key=lambda e: e["seq"]):
        login = wanted.get(entry["path"].split("/")[-3])
        if login is not None:
            history[login].append(f"{entry['route']} {entry['status']} @{entry['time'] % 1000:.2f}")
    return history


def _teams_writes(run: Run) -> dict[str, int]:
    """Successful setPresence / clearPresence per user beyond one each (a call needs one set; a call that
    ended, one set and one clear)."""
    per_user: Counter[tuple[str, str]] = Counter()
    for route in ("setPresence", "clearPresence"):
        for entry in run.stack.ms.requests(route)["entries"]:
            if 200 <= entry["status"] < 300:
                per_user[(route, entry["path"].split("/")[-3])] += 1
    return {"set": sum(per_user[k] for k in per_user if k[0] == "setPresence"),
            "clear": sum(per_user[k] for k in per_user if k[0] == "clearPresence"),
            "extra": sum(n - 1 for n in per_user.values() if n > 1)}


def _in_flight(run: Run) -> int:
    with transaction(run.stack.runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(AppliedState).where(
            AppliedState.claim_id.is_not(None), AppliedState.claim_expires_at > utcnow())) or 0


def _auth_token(entry: dict[str, Any]) -> str | None:
    return next((v for k, v in entry["headers"].items() if k.lower() == "authtoken"), None)


def _writes_that_landed(run: Run, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The STARFACE request log without requests that did not succeed: by the answer the simulator logged
    (a 2xx that is no XML-RPC fault), and for entries without one (a request cut off mid-way) by the
    window of an injected fault and the authTokens issued before the tokens were expired."""
    cut = run.tokens_expired_at if run.tokens_expired_at is not None else len(log)
    expired = {_auth_token(e) for e in log[:cut]} - {None}

    def landed(n: int, entry: dict[str, Any]) -> bool:
        if "status" in entry:
            return 200 <= entry["status"] < 300 and not entry["fault"]
        in_fault = any(a <= n < b for a, b in run.excluded)
        return not in_fault and not (n >= cut and _auth_token(entry) in expired)

    return [e for n, e in enumerate(log) if landed(n, e)]


def _max_change_id(run: Run) -> int:
    with transaction(run.stack.runtime.sessions) as session:
        return session.scalar(select(func.max(ChangeLog.id))) or 0


def _start_ticking(run: Run, scenario: Scenario) -> None:
    if scenario.beat:
        return  # the beats tick
    run.driver = TickDriver(run.stack, 1.0)
    run.driver.start()


def _stop_ticking(run: Run) -> None:
    if run.driver is not None:
        run.driver.stop()
    for beat in run.beats:
        terminate(beat, signal.SIGKILL, timeout=10)


def run_scenario(scenario: Scenario, params: Params, redis_server: RedisProcess, postgres: PostgresCluster,
                 baseline_s: float | None) -> dict[str, Any]:
    began = time.monotonic()
    users = params.changes + 2 * params.events
    database_url = postgres.create_database(f"chaos_{scenario.name}")
    migrate.upgrade(database_url)
    with chaos_stack(database_url, generate_key(), paired_seeds(users)) as stack:
        run = Run(scenario.name, params, stack, redis_server, postgres)
        run.change_users = list(range(params.changes))
        run.stay_users = list(range(params.changes, params.changes + params.events))
        run.hangup_users = list(range(params.changes + params.events, users))
        run.tenant_id = stack.add_tenant(f"chaos-{scenario.name}", poll_interval_s=params.cadence_s)
        teams_action(stack, list(range(users)), "sign_in")
        scenario.setup(run)
        for k in range(params.workers):
            run.start_worker(f"w{k}")
        batches = -(-users // GRAPH_BATCH_SIZE)
        try:
            make_due(stack, [run.tenant_id])
            _start_ticking(run, scenario)
            wait_polls(stack, 2 * batches, timeout=120)
            wait_until(lambda: queued_tasks() == 0 and _in_flight(run) == 0, timeout=120, interval=SAMPLE_S,
                       what="the warm-up to settle")
            stack.pbx.clear_request_log()
            since_id = _max_change_id(run)
            progress(f"{scenario.name}: {params.changes} Teams calls start; outage {run.outage_s:.0f} s")
            teams_action(stack, run.change_users, "call_start")
            triggered = time.monotonic()
            first_share = max(1, params.changes // 10)
            wait_until(lambda: _applied(run, since_id) >= first_share, timeout=120, interval=0.1,
                       what="the first tenth of the burst to land")
            fault_at = time.monotonic()
            applied_at_fault = _applied(run, since_id)
            scenario.inject(run)
            run.fire_events()
            scenario.recover(run)
            recovered_at = time.monotonic()
            outage = recovered_at - fault_at
            progress(f"{scenario.name}: recovered after {outage:.1f} s; waiting for convergence")
            bound = (baseline_s or 0.0) + outage + 2 * params.cadence_s
            converge_limit = (params.max_converge_s if baseline_s is None  # the baseline sets the bound
                              else min(params.max_converge_s, max(120.0, 4 * bound)))
            converged_at: float | None = None
            deadline = time.monotonic() + converge_limit
            while time.monotonic() < deadline:
                if _safe_converged(run, since_id):
                    converged_at = time.monotonic()
                    break
                time.sleep(SAMPLE_S)
            progress(f"{scenario.name}: {'converged' if converged_at else 'NOT converged'}; settling")
            try:  # late polls must not write again
                wait_polls(stack, 2 * batches, timeout=60)
            except TimeoutError:
                run.notes["settle_polls_missing"] = True
        finally:
            _stop_ticking(run)
        celery_app.control.purge()
        wait_until(lambda: _in_flight(run) == 0, timeout=180, interval=SAMPLE_S, what="no update in flight")
        stack.pbx.wait_webhooks_idle(timeout=60)
        applied = _applied(run, since_id)
        missing, stale = _wrong_sessions(run)
        log = stack.pbx.request_log()
        kept = _writes_that_landed(run, log)
        run.notes["starface_requests_not_counted"] = len(log) - len(kept)
        dnd, chat = starface_writes(kept)
        with transaction(stack.runtime.sessions) as session:
            changes = list(session.scalars(select(ChangeLog).where(
                ChangeLog.tenant_id == run.tenant_id, ChangeLog.target == "starface",
                ChangeLog.id > since_id)))
        extra = duplicate_writes(stack, changes, dnd, chat)
        if extra:
            run.notes["duplicate_write_trails"] = write_trails(stack, sorted(extra)[:5], kept, changes)
        change_accounts = {stack.seeds.account(i) for i in run.change_users}
        with transaction(stack.runtime.sessions) as session:
            recorded_twice = session.scalar(select(func.count()).select_from(
                select(ChangeLog.user_link_id).where(ChangeLog.tenant_id == run.tenant_id,
                                                     ChangeLog.cause == CALL_CAUSE, ChangeLog.id > since_id)
                .group_by(ChangeLog.user_link_id).having(func.count() > 1).subquery())) or 0
        teams = _teams_writes(run)
        history = _graph_history(run, (missing + stale)[:10])
        graph_statuses = Counter(str(e["status"]) for e in stack.ms.requests()["entries"])
        run.notes["graph_answers"] = dict(sorted(graph_statuses.items()))
        run.notes["graph_token_requests"] = stack.ms.count("token")
        if run.relay is not None:
            run.relay.stop()
        tick_errors = run.driver.errors if run.driver else None
    converge_after = None if converged_at is None else round(max(0.0, converged_at - recovered_at), 1)
    total = None if converged_at is None else converged_at - triggered
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "outage_s": round(outage, 1),
        "outage_configured_s": run.outage_s,
        "changes_expected": params.changes,
        "changes_applied": applied,
        "changes_lost": params.changes - applied,
        "changes_applied_before_fault": applied_at_fault,
        "duplicate_writes": sum(sum(f.values()) for f in extra.values()),
        "duplicate_writes_by_account": {str(a): f for a, f in sorted(extra.items())[:20]},
        "changes_recorded_twice": recorded_twice,
        "writes_to_other_users": sum(n for a, n in (dnd + chat).items() if a not in change_accounts),
        "dnd_writes": sum(dnd.values()),
        "chat_writes": sum(chat.values()),
        "events_expected": 2 * params.events,
        "events_lost": len(missing),
        "events_stale_session": len(stale),
        "events_lost_users": [stack.seeds.login(i) for i in missing][:20],
        "events_wrong_graph_history": history,
        "teams_writes": teams,
        "seconds_to_converge_after_recovery": converge_after,
        "seconds_trigger_to_converged": None if total is None else round(total, 1),
        "bound_s": round(bound, 1),
        "converged": converged_at is not None,
        "converged_within_bound": total is not None and total <= bound,
        "tick_errors": tick_errors,
        "notes": run.notes,
        "duration_s": round(time.monotonic() - began, 1),
    }

