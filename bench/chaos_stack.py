"""The stack one chaos scenario runs on, and what the scenario reads back from it.

The stack is `embedded.stack.Stack` (both simulators over real HTTP, Celery worker processes, the web app
in this process), built on the chaos suite's own PostgreSQL database and Redis. It differs from
`StackFactory.build` only where the suite needs it: the STARFACE simulator keeps a request log big enough
for a whole scenario, and the in-process runtime can be rebuilt (the encryption key rotation).

Import this module only after `bench.chaos` has pointed TEAMSCONNECT_TEST_BROKER_URL /
TEAMSCONNECT_TEST_COORDINATION_URL at its own Redis: `embedded.stack` reads them at import time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from sqlalchemy import func, select

from bench.changes import _chat_account
from config.settings import load_settings
from embedded.stack import BROKER_URL, COORDINATION_URL, ROOT, Stack, StackFactory, serve_web
from embedded.waiting import wait_until
from models import AppliedState, ChangeLog, UserLink
from models.db import transaction
from simulators.microsoft import MicrosoftSimulator
from simulators.paired import PairedSeeds
from simulators.starface import StarfaceSimulator
from sync.runtime import build_runtime, set_runtime
from workers.app import celery_app, configure_broker

REQUEST_LOG_LIMIT = 2_000_000


@contextmanager
def chaos_stack(database_url: str, encryption_key: str, seeds: PairedSeeds) -> Iterator[Stack]:
    factory = StackFactory(database_url, encryption_key)
    for url in (BROKER_URL, COORDINATION_URL):
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    with MicrosoftSimulator(seeds.microsoft) as microsoft, \
            StarfaceSimulator(seeds.starface, webhook_retry_base_s=0.05,
                              request_log_limit=REQUEST_LOG_LIMIT) as starface:
        env = factory.env(microsoft.ca_path)
        runtime = build_runtime(load_settings({k: v for k, v in env.items()
                                               if k.startswith("TEAMSCONNECT_")}))
        set_runtime(runtime)
        configure_broker(BROKER_URL)
        web_url, stop_web = serve_web()
        stack = Stack(seeds, microsoft, starface, env, runtime, web_url=web_url)
        try:
            yield stack
        finally:
            stack.stop()
            stop_web()
            set_runtime(None)


def start_worker(stack: Stack, name: str, concurrency: int) -> subprocess.Popen[bytes]:
    """As `Stack.start_worker`, but a broken broker connection during the ping (after a Redis restart)
    counts as "no answer yet" instead of failing the start."""
    command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q",
               "poll,apply,events,maintenance", "-c", str(concurrency), "--pool", "prefork", "-n",
               f"{name}@%h", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
    process = subprocess.Popen(command, cwd=ROOT, env=stack.env, start_new_session=True)
    stack.workers.append(process)

    def answers() -> bool:
        try:
            return any(f"{name}@" in reply for r in celery_app.control.ping(timeout=0.5) for reply in r)
        except Exception:  # a stale pooled connection: the next ping opens a new one
            return False

    wait_until(answers, timeout=60, what=f"worker {name} to answer a ping")
    return process


def rebuild_runtime(stack: Stack) -> None:
    """The in-process runtime (tick driver, web app) re-reads the settings of ``stack.env``."""
    runtime = build_runtime(load_settings({k: v for k, v in stack.env.items()
                                           if k.startswith("TEAMSCONNECT_")}))
    set_runtime(runtime)
    stack.runtime = runtime


def start_beat(stack: Stack, log_path: str) -> subprocess.Popen[bytes]:
    """`celery beat` with celery-redbeat, as `teamsconnect beat` runs it, in its own process group."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "beat",
                                 "--loglevel", "INFO"], cwd=ROOT, env=stack.env, start_new_session=True,
                                stdout=log, stderr=subprocess.STDOUT)


def terminate(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0,
              group: bool = True) -> None:
    """Signals the process group (``group=False``: the main process only); SIGKILL to the group if it has
    not exited within ``timeout``, and nothing of it outlives it."""
    if process.poll() is None:
        (os.killpg if group else os.kill)(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def warm_shutdown(process: subprocess.Popen[bytes]) -> None:
    """Stops a worker as `docker compose` does (compose/compose.yaml, stop grace period 60 s): SIGTERM to
    the main process only, which lets its running tasks finish (Celery's warm shutdown). A SIGTERM to the
    whole group would kill the pool's children mid-task (Celery resets SIGTERM to its default in them)."""
    terminate(process, timeout=60.0, group=False)


def changes_applied(stack: Stack, tenant_id: int, cause: str) -> list[ChangeLog]:
    with transaction(stack.runtime.sessions) as session:
        return list(session.scalars(select(ChangeLog).where(
            ChangeLog.tenant_id == tenant_id, ChangeLog.target == "starface", ChangeLog.cause == cause)))


def starface_changes(stack: Stack, tenant_id: int) -> list[ChangeLog]:
    with transaction(stack.runtime.sessions) as session:
        return list(session.scalars(select(ChangeLog).where(
            ChangeLog.tenant_id == tenant_id, ChangeLog.target == "starface")))


def claims_in_flight(stack: Stack) -> int:
    with transaction(stack.runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(AppliedState)
                              .where(AppliedState.claim_id.is_not(None))) or 0


def queued_tasks() -> int:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        return sum(int(client.llen(queue)) for queue in ("poll", "apply", "events", "maintenance"))
    finally:
        client.close()


def starface_writes(entries: list[dict[str, Any]]) -> tuple[Counter[int], Counter[int]]:
    """DND writes (phoneconfig PUTs) and chat writes (bridge setChatStatus) per STARFACE account."""
    dnd: Counter[int] = Counter()
    chat: Counter[int] = Counter()
    for entry in entries:
        if entry["method"] == "PUT" and entry["path"].endswith("/phoneconfig"):
            dnd[int(entry["path"].split("/")[3])] += 1
        elif entry["method"] == "POST" and entry["path"] == "/xml-rpc":
            account = _chat_account(entry["body"])
            if account is not None:
                chat[account] += 1
    return dnd, chat


def duplicate_writes(stack: Stack, changes: list[ChangeLog], dnd: Counter[int],
                     chat: Counter[int]) -> dict[int, dict[str, int]]:
    """Per account: writes of a field beyond the ChangeLog rows that record a write of that field."""
    with transaction(stack.runtime.sessions) as session:
        accounts = dict(session.execute(select(UserLink.id, UserLink.starface_account_id)).all())
    recorded: dict[str, Counter[int]] = {"dnd": Counter(), "chat_text": Counter()}
    for change in changes:
        account = accounts.get(change.user_link_id)
        for name, counter in recorded.items():
            if account is not None and name in change.after:
                counter[account] += 1
    extra: dict[int, dict[str, int]] = {}
    for name, seen in (("dnd", dnd), ("chat_text", chat)):
        for account, n in seen.items():
            if n > recorded[name][account]:
                extra.setdefault(account, {})[name] = n - recorded[name][account]
    return extra


def write_trails(stack: Stack, accounts: list[int], entries: list[dict[str, Any]],
                 changes: list[ChangeLog]) -> dict[str, dict[str, list[Any]]]:
    """For accounts with duplicate writes: their writes as the PBX received them and their audit rows, in
    time order, so a duplicate can be told apart from a write that was made but not recorded."""
    with transaction(stack.runtime.sessions) as session:
        links = dict(session.execute(select(UserLink.starface_account_id, UserLink.id)).all())
    trails: dict[str, dict[str, list[Any]]] = {}
    for account in accounts:
        writes = [[round(e["at"], 3), e["method"], _what(e)] for e in entries
                  if (e["method"] == "PUT" and e["path"] == f"/rest/users/{account}/phoneconfig")
                  or (e["path"] == "/xml-rpc" and _chat_account(e["body"]) == account)]
        rows = [[round(c.applied_at.timestamp(), 3), c.cause, c.after] for c in changes
                if c.user_link_id == links.get(account)]
        trails[str(account)] = {"writes": writes, "changes": rows}
    return trails


def _what(entry: dict[str, Any]) -> str:
    """A write as the trail shows it: the PUT's body, the bridge call's method name (never its secret)."""
    if entry["path"] != "/xml-rpc":
        return str(entry["body"])[:120]
    start = entry["body"].find("<methodName>") + len("<methodName>")
    return str(entry["body"][start:entry["body"].find("</methodName>")])


def poll_requests(stack: Stack) -> int:
    return stack.ms.count("getPresencesByUserId")


def wait_polls(stack: Stack, count: int, timeout: float, between: Callable[[], None] | None = None) -> None:
    start = poll_requests(stack)
    wait_until(lambda: poll_requests(stack) - start >= count, timeout=timeout, interval=0.25,
               between=between, what=f"{count} more Graph presence polls")
