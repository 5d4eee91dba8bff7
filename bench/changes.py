"""Change load: many Teams calls start at once; how fast do the STARFACE writes land, and are there
duplicates?

Method: with beat paused, N signed-in users start a Teams call in the Microsoft simulator (control API,
16 connections). Then the tenants are made due and the tick driver starts (beat at 1 s), so the next
cycle sees all N changes at once and the worker processes apply them. "Applied" means the apply task
recorded its ChangeLog row (after its STARFACE writes returned). A few more cycles run afterwards
(late polls must not write again), and once no update is in flight the STARFACE simulator's request log
is compared with the ChangeLog: per account, phoneconfig PUTs (DND) and bridge setChatStatus calls
beyond the recorded changes are duplicate writes.
"""

from __future__ import annotations

import threading
import time
import xmlrpc.client
from collections import Counter
from typing import Any

import redis
from sqlalchemy import func, select

from bench.harness import TickDriver, make_due, percentiles, progress, teams_action
from bench.latency import session_latencies
from bench.procstat import CpuMeter
from embedded.stack import BROKER_URL, Stack, queued_tasks
from embedded.waiting import wait_until
from models import AppliedState, ChangeLog, UserLink
from models.db import transaction
from simulators.starface import StarfaceSimControl
from workers.app import celery_app
from workers.queues import QUEUE_APPLY

_PHONECONFIG = "/phoneconfig"


def _max_change_id(stack: Stack) -> int:
    with transaction(stack.runtime.sessions) as session:
        return session.scalar(select(func.max(ChangeLog.id))) or 0


def _changes_since(stack: Stack, after_id: int, tenant_ids: list[int]) -> list[ChangeLog]:
    with transaction(stack.runtime.sessions) as session:
        return list(session.scalars(select(ChangeLog).where(
            ChangeLog.id > after_id, ChangeLog.tenant_id.in_(tenant_ids), ChangeLog.target == "starface")))


def _burst_applied(stack: Stack, after_id: int, tenant_ids: list[int], links: set[int]) -> int:
    """How many of the burst's changes are recorded: the progress check runs every 0.25 s on the host the
    workers share, so it reads only the new rows' user ids and counts the burst's users among them here.
    Loading the rows cost the harness more CPU than the tick it drives, and filtering by the 2,000 users'
    ids in PostgreSQL (a parameter array, searched per row once the statement was prepared) cost the
    database 5 CPU-s a burst."""
    with transaction(stack.runtime.sessions) as session:
        recorded = session.scalars(select(ChangeLog.user_link_id).where(
            ChangeLog.id > after_id, ChangeLog.tenant_id.in_(tenant_ids), ChangeLog.target == "starface",
            ChangeLog.cause == "teams:InACall"))
        return sum(1 for link_id in recorded if link_id in links)


def _claims_in_flight(stack: Stack, tenant_ids: list[int]) -> int:
    with transaction(stack.runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(AppliedState).where(
            AppliedState.tenant_id.in_(tenant_ids), AppliedState.claim_id.is_not(None))) or 0


def _chat_account(body: str) -> int | None:
    """The account of a bridge setChatStatus call (the body's secret is never looked at or kept)."""
    try:
        params, method = xmlrpc.client.loads(body)
    except Exception:  # not XML-RPC: not a chat write
        return None
    if not (method or "").endswith(".setChatStatus") or not params or not isinstance(params[0], dict):
        return None
    return int(params[0]["account"])


def count_writes(stack: Stack) -> tuple[Counter[int], Counter[int], int]:
    """DND writes and chat writes per STARFACE account in the simulator's request log, and its length."""
    dnd: Counter[int] = Counter()
    chat: Counter[int] = Counter()
    log = stack.pbx.request_log()
    for entry in log:
        if entry["method"] == "PUT" and entry["path"].endswith(_PHONECONFIG):
            dnd[int(entry["path"].split("/")[3])] += 1
        elif entry["method"] == "POST" and entry["path"] == "/xml-rpc":
            account = _chat_account(entry["body"])
            if account is not None:
                chat[account] += 1
    return dnd, chat, len(log)


def duplicate_writes(stack: Stack, changes: list[ChangeLog], dnd: Counter[int], chat: Counter[int]) -> int:
    """Writes the simulator saw beyond the changes recorded for the same account and field."""
    with transaction(stack.runtime.sessions) as session:
        accounts = dict(session.execute(select(UserLink.id, UserLink.starface_account_id)).all())
    recorded_dnd: Counter[int] = Counter()
    recorded_chat: Counter[int] = Counter()
    for change in changes:
        account = accounts.get(change.user_link_id)
        if account is None:
            continue
        if "dnd" in change.after:
            recorded_dnd[account] += 1
        if "chat_text" in change.after:
            recorded_chat[account] += 1
    extra = sum(max(0, n - recorded_dnd[a]) for a, n in dnd.items())
    return extra + sum(max(0, n - recorded_chat[a]) for a, n in chat.items())


def _apply_backlog(broker: redis.Redis) -> int:
    return queued_tasks(broker, QUEUE_APPLY)


class CallsUnderLoad:
    """STARFACE calls answered one after another while the burst is applied (a load generator paced at
    ``every_s``): their STARFACE -> Teams latency under load."""

    def __init__(self, stack: Stack, users: list[int], every_s: float = 0.25) -> None:
        self._stack, self._users, self._every_s = stack, users, every_s
        self.answered: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-calls-under-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pbx = StarfaceSimControl(self._stack.starface.base_url)
        try:
            for index in self._users:
                if self._stop.is_set():
                    return
                login = self._stack.seeds.login(index)
                pbx.ring(login)
                self.answered[index] = time.time()
                pbx.answer(login)
                self._stop.wait(self._every_s)  # pacing of the load generator
        finally:
            pbx.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def measure_changes(stack: Stack, tenant_ids: list[int], users: list[int], driver: TickDriver,
                    batches_per_cycle: int, timeout_s: float, settle_cycles: int = 3,
                    meter: CpuMeter | None = None, pbx_users: list[int] | None = None) -> dict[str, Any]:
    """Runs the change load (see the module docstring); starts the tick driver and stops it at the end.

    Reports what it measured even when not every change landed within ``timeout_s`` ("complete": false).
    Afterwards beat stops and the queues are purged, so the duplicate count compares a quiet PBX log.
    """
    broker = redis.Redis.from_url(BROKER_URL)
    # What the previous phase still applies is recorded before the baseline (a batch records its users
    # together, after its last STARFACE write), so it is neither counted here nor taken for a duplicate.
    wait_until(lambda: _claims_in_flight(stack, tenant_ids) == 0 and _apply_backlog(broker) == 0, timeout=60,
               what="the previous phase's updates to be recorded")
    stack.pbx.clear_request_log()
    baseline = _max_change_id(stack)
    started = time.perf_counter()
    teams_action(stack, users, "call_start")
    progress(f"changes: {len(users)} Teams calls started in {time.perf_counter() - started:.1f} s; polling")
    make_due(stack, tenant_ids)
    calls = CallsUnderLoad(stack, pbx_users or [])
    stack.pbx.reset_concurrency()
    if meter is not None:
        meter.start()
    triggered = time.time()
    driver.start()
    calls.start()
    expected = len(users)
    accounts = {stack.seeds.account(i) for i in users}
    with transaction(stack.runtime.sessions) as session:
        links = {link_id for link_id, account in session.execute(
            select(UserLink.id, UserLink.starface_account_id).where(UserLink.tenant_id.in_(tenant_ids)))
            if account in accounts}
    peak_backlog = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        peak_backlog = max(peak_backlog, _apply_backlog(broker))
        if _burst_applied(stack, baseline, tenant_ids, links) >= expected:
            break
        time.sleep(0.25)  # sampling interval of the progress check
    cpu = meter.read() if meter is not None else {}
    rows = [c for c in _changes_since(stack, baseline, tenant_ids)
            if c.cause == "teams:InACall" and c.user_link_id in links]
    calls.stop()
    pbx_peak = stack.pbx.concurrency()["peak"]
    complete = len(rows) >= expected
    ended = max(c.applied_at for c in rows).timestamp() if complete and rows else time.time()
    first = min(c.applied_at for c in rows).timestamp() if rows else None
    progress(f"changes: {len(rows)}/{expected} applied after {ended - triggered:.1f} s "
             f"(apply queue peaked at {peak_backlog} tasks); settling")
    if complete:
        settled_at = stack.ms.count("getPresencesByUserId") + settle_cycles * batches_per_cycle
        wait_until(lambda: stack.ms.count("getPresencesByUserId") >= settled_at,
                 timeout=30 + 3 * settle_cycles, what="the settle cycles", interval=0.5)
    driver.stop()
    backlog_left = _apply_backlog(broker)
    celery_app.control.purge()
    wait_until(lambda: _claims_in_flight(stack, tenant_ids) == 0, timeout=60, what="no update in flight")
    broker.close()
    dnd, chat, log_entries = count_writes(stack)
    all_changes = _changes_since(stack, baseline, tenant_ids)
    seconds = ended - triggered
    under_load, missing = session_latencies(stack, calls.answered)
    worker_cpu = cpu.get("workers")
    return {
        "starface_to_teams_under_load_ms": {**percentiles(under_load), "missing": missing},
        "worker_cpu_s": worker_cpu,
        "worker_cpu_ms_per_change": round(1000 * worker_cpu / len(rows), 2) if worker_cpu and rows else None,
        "cpu_s_by_process": cpu,
        "pbx_peak_in_flight": pbx_peak,
        "changes": expected,
        "applied": len(rows),
        "complete": complete,
        "starface_writes_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None,
        "duplicate_writes": duplicate_writes(stack, all_changes, dnd, chat),
        "seconds_to_apply_all": round(seconds, 2) if complete else None,
        "first_applied_after_s": round(first - triggered, 2) if first else None,
        "apply_queue_peak": peak_backlog,
        "apply_queue_left_purged": backlog_left,
        "dnd_puts": sum(dnd.values()),
        "chat_writes": sum(chat.values()),
        "changelog_rows": len(all_changes),
        "starface_requests": log_entries,
        "starface_requests_per_change": round(log_entries / len(rows), 2) if rows else None,
        "method": ("N users start a Teams call at once (beat paused), then beat resumes at 1 s; "
                   "starface_writes_per_s = changes applied (ChangeLog rows) / (last applied_at - trigger), "
                   f"or / {timeout_s:.0f} s when not all landed in time; apply_queue_peak = largest "
                   "length of the Redis 'apply' queue seen; duplicates = phoneconfig PUTs and "
                   "setChatStatus calls in the STARFACE simulator's request log beyond the ChangeLog rows "
                   "of the same account, "
                   "after settle cycles, with beat stopped, the queues purged and no update in flight; "
                   "starface_to_teams_under_load_ms = STARFACE calls answered every 0.25 s from the trigger "
                   "until the burst is applied -> setPresence logged by the Microsoft simulator; "
                   "worker_cpu_ms_per_change = CPU of the poll/apply worker processes (/proc, whole trees) "
                   "from the trigger until the last change was applied (polls included) / changes applied; "
                   "pbx_peak_in_flight = most requests the STARFACE simulator served at once"),
    }
