"""What every benchmark phase stands on: the database, the stack with N tenants, fan-out of simulator
control calls, a beat-like tick driver, and progress lines on stderr.

The stack is `embedded.stack` (both simulators over real HTTP, real PostgreSQL and Redis, Celery worker
processes, the web app): the benchmark adds nothing of its own to the pipeline, it only drives it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, select, update

from bench.procstat import this_machine
from config.settings import Settings
from connectors.graph import GraphError
from connectors.starface import StarfaceError
from embedded.stack import Stack
from models import Tenant, UserLink, migrate
from models.base import utcnow
from models.crypto import SecretBox, generate_key
from models.db import make_engine, make_session_factory, transaction
from presence.linking import LinkState, SelectionMode
from simulators.microsoft import MicrosoftSimControl
from simulators.paired import FIRST_ACCOUNT_ID, PairedSeeds, paired_seeds
from sync.coordination import LocalCoordination
from sync.directory import sync_directory
from sync.ports import CollectingQueue
from sync.runtime import Runtime

T = TypeVar("T")

BENCH_DATABASE_ENV = "TEAMSCONNECT_BENCH_DATABASE_URL"
#: STARFACE group ids for the tenants' user selection; far above every account id of the seed.
FIRST_GROUP_ID = 1_000_000
CONTROL_THREADS = 16
SYNC_ATTEMPTS = 3
_started = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries only the JSON result)."""
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


#: Timed rounds of a one-process benchmark; the best counts (the least disturbed by the shared machine).
ROUNDS = 7


def thread_cpu_us(step: Callable[[], object], per: int, repeats: int) -> float:
    """CPU microseconds of this thread per unit (``per`` units a call): the best of ROUNDS rounds of
    ``repeats`` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.thread_time()
        for _ in range(repeats):
            step()
        best = min(best, (time.thread_time() - started) / repeats)
    return round(best / per * 1e6, 2)


def write_and_print(result: dict[str, Any], path: Path) -> None:
    """A one-process benchmark's result, with the machine it ran on: written to ``path`` (indented) and
    printed as ONE JSON line."""
    result = {**result, "machine": this_machine()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


def pass_settings(values: dict[str, object | None]) -> None:
    """Deployment settings a benchmark varies (documented in its JSON): into this process's environment,
    whence the stack hands them to its worker processes (embedded/stack.py: PASSED_SETTINGS). None keeps
    the product's default."""
    for name, value in values.items():
        if value is not None:
            os.environ[name] = str(value)


@contextmanager
def bench_database() -> Iterator[tuple[str, str]]:
    """A migrated PostgreSQL database and a description of it.

    With TEAMSCONNECT_BENCH_DATABASE_URL the benchmark uses that (dedicated) database and removes its own
    tenants afterwards; otherwise it creates a fresh database on the test server, as tests/conftest.py
    does (TEAMSCONNECT_TEST_DATABASE_URL, default postgres@127.0.0.1:5432), and drops it afterwards.
    """
    configured = os.environ.get(BENCH_DATABASE_ENV)
    if configured:
        migrate.upgrade(configured)
        yield configured, f"PostgreSQL from {BENCH_DATABASE_ENV}"
        return
    from tests.conftest import create_postgres_database, drop_postgres_database

    url = create_postgres_database("tc_bench")
    try:
        migrate.upgrade(url)
        yield url, "PostgreSQL, fresh database on the test server"
    finally:
        drop_postgres_database(url)


def in_process_runtime(database_url: str) -> Runtime:
    """A worker's runtime in this process on ``database_url``, for the one-process benchmarks: a new
    encryption key, the in-process coordination, no broker."""
    key = generate_key()
    engine = make_engine(database_url)
    settings = Settings(database_url=database_url, encryption_keys=key, redis_url="")
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine),
                   box=SecretBox([key]), coordination=LocalCoordination())


def tenant_seeds(users: int, tenants: int) -> PairedSeeds:
    """One Microsoft tenant and one PBX shared by ``tenants`` customers; STARFACE group k holds the k-th
    contiguous block of users, so each tenant selects its own users (group mode, as in the module)."""
    seeds = paired_seeds(users)
    size = -(-users // tenants)
    seeds.starface["groups"] = [
        {"id": FIRST_GROUP_ID + k, "name": f"bench-{k}",
         "members": [FIRST_ACCOUNT_ID + i for i in range(k * size, min(users, (k + 1) * size))]}
        for k in range(tenants)
    ]
    return seeds


def tenant_of(index: int, users: int, tenants: int) -> int:
    """Which tenant (0-based) user ``index`` belongs to in ``tenant_seeds``."""
    return index // -(-users // tenants)


def add_tenants(stack: Stack, tenants: int) -> list[int]:
    """Creates the tenants (group selection) and syncs their directories; the last one owns the webhook."""
    run = uuid.uuid4().hex[:6]
    ids = []
    for k in range(tenants):
        selection = {"mode": SelectionMode.GROUP_PLUS_LISTED.value, "starface_group_id": FIRST_GROUP_ID + k}
        tenant_id = stack.add_tenant(f"bench-{run}-{k}", selection=selection, sync=False)
        with transaction(stack.runtime.sessions) as session:
            tenant = session.get(Tenant, tenant_id)
        for attempt in range(1, SYNC_ATTEMPTS + 1):
            try:  # a loaded machine may time a simulator out, as an operator sees; they sync again
                sync_directory(stack.runtime, tenant, CollectingQueue())
                break
            except (GraphError, StarfaceError) as exc:
                progress(f"setup: directory sync of tenant {tenant_id} failed ({exc}); attempt {attempt}")
                if attempt == SYNC_ATTEMPTS:
                    raise
        ids.append(tenant_id)
    return ids


def linked_counts(stack: Stack, tenant_ids: list[int]) -> dict[int, int]:
    with transaction(stack.runtime.sessions) as session:
        rows = session.execute(select(UserLink.tenant_id).where(
            UserLink.tenant_id.in_(tenant_ids), UserLink.state == LinkState.LINKED.value)).all()
    counts = dict.fromkeys(tenant_ids, 0)
    for (tenant_id,) in rows:
        counts[tenant_id] += 1
    return counts


def make_due(stack: Stack, tenant_ids: list[int]) -> None:
    """Every bench tenant is due now (the next tick claims them)."""
    with transaction(stack.runtime.sessions) as session:
        session.execute(update(Tenant).where(Tenant.id.in_(tenant_ids)).values(next_poll_at=utcnow())
                        .execution_options(synchronize_session=False))


def remove_tenants(stack: Stack, tenant_ids: list[int]) -> None:
    """Leaves a configured (shared) benchmark database as it was found."""
    with transaction(stack.runtime.sessions) as session:
        session.execute(delete(Tenant).where(Tenant.id.in_(tenant_ids)))


def fan_out(stack: Stack, calls: list[Callable[[MicrosoftSimControl], T]],
            threads: int = CONTROL_THREADS) -> list[T]:
    """Runs Microsoft simulator control calls on ``threads`` connections at once (each call is a real
    HTTP request; one connection per thread, so nothing is shared between threads)."""
    local = threading.local()
    clients: list[MicrosoftSimControl] = []
    lock = threading.Lock()

    def client() -> MicrosoftSimControl:
        if not hasattr(local, "ms"):
            local.ms = MicrosoftSimControl(stack.microsoft.base_url, verify=stack.microsoft.ca_path)
            with lock:
                clients.append(local.ms)
        return local.ms

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda call: call(client()), calls))
    finally:
        for ms in clients:
            ms.close()


def teams_action(stack: Stack, indexes: list[int], action: str) -> None:
    entra_ids = [stack.seeds.entra_id(i) for i in indexes]
    fan_out(stack, [lambda ms, e=entra_id: ms.teams(e, action) for entra_id in entra_ids])


@dataclass
class TickDriver:
    """Runs ``stack.tick()`` every ``period_s`` in a thread, as Celery beat runs the tick entry."""

    stack: Stack
    period_s: float = 1.0
    ticks: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-beat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.stack.tick()
                self.ticks += 1
            except Exception as exc:  # a failed tick is what beat would log; the next one retries
                self.errors += 1
                progress(f"tick failed: {type(exc).__name__}: {exc}")
            next_at += self.period_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50/p95/p99 (nearest rank, so every figure is a measured sample), max and count."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def rank(p: int) -> float:
        return round(ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)], 1)

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(ordered[-1], 1),
            "n": len(ordered)}
