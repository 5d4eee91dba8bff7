"""A whole TeamsConnect stack for end-to-end tests and the benchmark: both simulators, real PostgreSQL and
Redis, Celery worker processes, the web app for webhooks, and a test-side tick driver. Nothing of ours is
mocked; tenants are created through the tenant service like an operator's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import uvicorn
from sqlalchemy import func, select

from config.settings import load_settings
from embedded.waiting import T, wait_until
from models import AppliedState, ChangeLog, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from presence.linking import LinkState
from scheduler.tick import run_tick
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator
from simulators.paired import (
    BRIDGE_SECRET,
    STARFACE_ADMIN_LOGIN,
    STARFACE_ADMIN_PASSWORD,
    PairedSeeds,
)
from simulators.starface import StarfaceSimControl, StarfaceSimulator
from sync.directory import sync_directory
from sync.runtime import Runtime, build_runtime, set_runtime
from tenants.changes import deep_merge
from tenants.service import create_tenant
from workers.app import celery_app, configure_broker
from workers.task_queue import CELERY_QUEUE

ROOT = Path(__file__).resolve().parents[1]
BROKER_URL = os.environ.get("TEAMSCONNECT_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
COORDINATION_URL = os.environ.get("TEAMSCONNECT_TEST_COORDINATION_URL", "redis://127.0.0.1:6379/12")
#: Settings taken over from the environment into the stack's processes (everything else is the stack's).
PASSED_SETTINGS = ("TEAMSCONNECT_STARFACE_MAX_IN_FLIGHT", "TEAMSCONNECT_STARFACE_MAX_PER_S",
                   "TEAMSCONNECT_FLOWER_POLL_TASKS")


@dataclass
class Stack:
    seeds: PairedSeeds
    microsoft: MicrosoftSimulator
    starface: StarfaceSimulator
    env: dict[str, str]
    runtime: Runtime
    web_url: str = ""
    tenant_id: int = 0
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: The reserved events workers among ``workers``.
    events_workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: The simulators and the web app when they run as their own processes (build(processes=True)).
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ms: MicrosoftSimControl = field(init=False)
    pbx: StarfaceSimControl = field(init=False)

    def __post_init__(self) -> None:
        self.ms = MicrosoftSimControl(self.microsoft.base_url, verify=self.microsoft.ca_path)
        self.pbx = StarfaceSimControl(self.starface.base_url)

    # --- tenant -------------------------------------------------------------------------------------
    def tenant_definition(self, name: str, bridge: bool = True) -> dict[str, Any]:
        """A tenant definition (tenants/schema.py) pointing at both simulators, as an operator writes it."""
        microsoft = {"directory_id": self.seeds.tenant["id"], "client_id": self.seeds.app["clientId"],
                     "client_secret": self.seeds.app["secret"], "login_base_url": self.microsoft.base_url,
                     "graph_base_url": self.microsoft.base_url}
        bridge_config = {"instance": "TeamsConnectBridge", "secret": BRIDGE_SECRET} if bridge else None
        starface = {"base_url": self.starface.base_url, "login_id": STARFACE_ADMIN_LOGIN,
                    "password": STARFACE_ADMIN_PASSWORD, "bridge": bridge_config}
        return {"name": name, "microsoft": microsoft, "starface": starface}

    def add_tenant(self, name: str = "contoso", *, bridge: bool = True, sync: bool = True,
                   **settings: Any) -> int:
        """Creates the tenant through the tenant service and links its users (directory sync).

        ``settings`` are parts of the definition laid over the simulators' one, e.g. ``poll_interval_s=1.0``
        or ``selection={"login_ids": ["1100"]}``.
        """
        definition = deep_merge(self.tenant_definition(name, bridge), settings)
        with transaction(self.runtime.sessions) as session:
            self.tenant_id = create_tenant(session, self.runtime.box, definition).id
        if sync:
            with transaction(self.runtime.sessions) as session:
                tenant = session.get(Tenant, self.tenant_id)
                assert tenant is not None
            sync_directory(self.runtime, tenant, CELERY_QUEUE)
        if bridge and self.web_url:
            self.pbx.set_webhook(f"{self.web_url}/hooks/starface/{self.tenant_id}")
        return self.tenant_id

    # --- processes ----------------------------------------------------------------------------------
    def start_worker(self, name: str, concurrency: int = 2, queues: str = "poll,apply,events,maintenance",
                     pool: str = "prefork", reserve_events: bool = True) -> subprocess.Popen[bytes]:
        """Starts a Celery worker on ``queues``. With the events queue among others and
        ``reserve_events``, the events get a reserved slot: a one-process worker of their own beside it
        (``{name}-events``, as compose's ``worker-events`` service), so a STARFACE call never waits
        behind polls or a burst of updates. Returns the main worker."""
        names = queues.split(",")
        if reserve_events and "events" in names and len(names) > 1:
            self.events_workers.append(self._start_celery(f"{name}-events", 1, "events", pool))
            queues = ",".join(q for q in names if q != "events")
        return self._start_celery(name, concurrency, queues, pool)

    def _start_celery(self, name: str, concurrency: int, queues: str, pool: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues,
                   "-c", str(concurrency), "--pool", pool, "-n", f"{name}@%h", "--loglevel", "WARNING",
                   "--without-gossip", "--without-mingle"]
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True)
        self.workers.append(process)
        wait_until(lambda: any(f"{name}@" in reply for r in celery_app.control.ping(timeout=0.5)
                               for reply in r), timeout=30, what=f"worker {name} to answer a ping")
        return process

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children (no chance to finish or ack anything)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_workers(self) -> None:
        """Stops every worker started so far (a benchmark then starts others)."""
        for process in self.workers:
            _stop(process)
        self.workers.clear()
        self.events_workers.clear()

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.ms.close()
        self.pbx.close()

    # --- driving ------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One scheduler tick, exactly as beat runs it (claims due tenants, enqueues poll batches)."""
        run_tick(self.runtime.sessions, self.runtime.coordination, CELERY_QUEUE, utcnow())

    def make_due(self) -> None:
        with transaction(self.runtime.sessions) as session:
            tenant = session.get(Tenant, self.tenant_id)
            assert tenant is not None
            tenant.next_poll_at = utcnow()

    def until(self, condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
        """Ticks (as beat would) until ``condition`` holds."""
        return wait_until(condition, timeout=timeout, interval=0.1, between=self.tick, what=what)

    def settle(self, timeout: float = 15.0) -> None:
        """Waits until no update or event is queued or being applied, so the audit trail is complete: a
        write shows on a simulator a moment before the worker records it (same transaction as the claim
        is released), and the task clears its users' "update queued" marks a moment after that."""
        broker = redis.Redis.from_url(BROKER_URL)

        def idle() -> bool:
            queued = sum(queued_tasks(broker, queue) for queue in ("apply", "events", "poll"))
            with transaction(self.runtime.sessions) as session:
                claimed = session.scalar(select(func.count()).select_from(AppliedState)
                                         .where(AppliedState.claim_id.is_not(None),
                                                AppliedState.claim_expires_at > utcnow()))
            return queued == 0 and claimed == 0 and not self.runtime.coordination.any_pending()

        try:
            wait_until(idle, timeout=timeout, what="the pipeline to settle")
        finally:
            broker.close()

    def linked_batch(self) -> list[tuple[int, str]]:
        """(user link id, Entra object id) of every linked user, in id order: a poll batch as the tick
        builds it."""
        with transaction(self.runtime.sessions) as session:
            rows = session.execute(select(UserLink.id, UserLink.entra_object_id)
                                   .where(UserLink.state == LinkState.LINKED.value).order_by(UserLink.id))
            return [(link_id, entra_id or "") for link_id, entra_id in rows]

    def changes(self, target: str | None = None) -> list[ChangeLog]:
        with transaction(self.runtime.sessions) as session:
            query = select(ChangeLog).where(ChangeLog.tenant_id == self.tenant_id).order_by(ChangeLog.id)
            if target:
                query = query.where(ChangeLog.target == target)
            return list(session.scalars(query))

    def user(self, index: int) -> dict[str, Any]:
        """The simulated PBX's state of user ``index`` (dnd, chat, telephony)."""
        return self.pbx.user_state(self.seeds.login(index))

    def teams(self, index: int, action: str, **extra: Any) -> dict[str, Any]:
        return self.ms.teams(self.seeds.entra_id(index), action, **extra)

    def presence(self, index: int) -> dict[str, Any]:
        return self.ms.presence(self.seeds.entra_id(index))

    def phoneconfig_puts(self, index: int) -> int:
        path = f"/rest/users/{self.seeds.account(index)}/phoneconfig"
        return sum(1 for r in self.pbx.request_log() if r["method"] == "PUT" and r["path"] == path)


def queued_tasks(broker: redis.Redis, queue: str) -> int:
    """Tasks waiting in a Redis queue, over its priority lists (kombu keeps one per priority step)."""
    return sum(int(broker.llen(key)) for key in [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))])


class _WebServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


def serve_web() -> tuple[str, Callable[[], None]]:
    """Runs the web app (webhook receiver) in a thread on a free port; returns its URL and a stopper."""
    from web.app import app

    server = _WebServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started and server.servers, timeout=10, what="the web app to listen")
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


@dataclass
class RemoteSimulator:
    """A simulator running as its own process (`teamsconnect sim ...`), as Microsoft and the PBX run in
    production: what the Stack needs of it (address, CA), and its process."""

    base_url: str
    process: subprocess.Popen[bytes]
    ca_path: str = ""

    def wait_webhooks_idle(self, timeout: float = 5.0) -> bool:
        control = StarfaceSimControl(self.base_url)
        try:
            control.wait_webhooks_idle(timeout)
            return True
        except TimeoutError:
            return False
        finally:
            control.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _spawn(argv: list[str], env: dict[str, str], port: int, what: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "cli", *argv], cwd=ROOT, env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL)
    wait_until(lambda: _listening(port) or process.poll() is not None, timeout=60, what=f"{what} to listen")
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with {process.returncode}")
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


#: Microsoft simulator, STARFACE simulator, web app URL, the product's env, the web app's process.
Started = tuple[RemoteSimulator, RemoteSimulator, str, dict[str, str], subprocess.Popen[bytes]]


@contextmanager
def _separate_processes(seeds: PairedSeeds, scratch: Path, env_for: Callable[[str], dict[str, str]],
                        microsoft_args: list[str]) -> Iterator[Started]:
    """Both simulators and the web app, each its own process; yields them and the product's env."""
    (scratch / "microsoft.json").write_text(json.dumps(seeds.microsoft))
    (scratch / "starface.json").write_text(json.dumps(seeds.starface))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TEAMSCONNECT_")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ms_port, pbx_port, web_port = _free_port(), _free_port(), _free_port()
        tls_dir = scratch / "microsoft-tls"
        processes.append(_spawn(["sim", "microsoft", "--seed", str(scratch / "microsoft.json"), "--port",
                                 str(ms_port), "--tls-dir", str(tls_dir), *microsoft_args], base_env, ms_port,
                                "the Microsoft simulator"))
        microsoft = RemoteSimulator(f"https://127.0.0.1:{ms_port}", processes[-1], str(tls_dir / "ca.pem"))
        processes.append(_spawn(["sim", "starface", "--seed", str(scratch / "starface.json"), "--port",
                                 str(pbx_port)], base_env, pbx_port, "the STARFACE simulator"))
        starface = RemoteSimulator(f"http://127.0.0.1:{pbx_port}", processes[-1])
        env = env_for(microsoft.ca_path)
        processes.append(_spawn(["web", "--host", "127.0.0.1", "--port", str(web_port)], env, web_port,
                                "the web app"))
        yield microsoft, starface, f"http://127.0.0.1:{web_port}", env, processes[-1]
    finally:
        for process in reversed(processes):
            _stop(process)


@dataclass
class StackFactory:
    database_url: str
    encryption_key: str
    #: More TEAMSCONNECT_* settings for this process's runtime and the worker processes (e.g. the
    #: provider app's credential).
    extra_env: dict[str, str] = field(default_factory=dict)

    def _build_processes(self, seeds: PairedSeeds, microsoft_args: list[str] | None) -> Iterator[Stack]:
        with tempfile.TemporaryDirectory(prefix="tc-stack-") as scratch, \
                _separate_processes(seeds, Path(scratch), self.env, microsoft_args or []) as started:
            microsoft, starface, web_url, env, web = started
            settings = load_settings({k: v for k, v in env.items() if k.startswith("TEAMSCONNECT_")})
            runtime = build_runtime(settings)
            set_runtime(runtime)
            configure_broker(BROKER_URL)
            stack = Stack(seeds, microsoft, starface, env, runtime, web_url=web_url,  # type: ignore[arg-type]
                          services={"microsoft": microsoft.process, "starface": starface.process, "web": web})
            try:
                yield stack
            finally:
                stack.stop()
                set_runtime(None)

    def env(self, ca_path: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEAMSCONNECT_")}
        # Deployment settings a benchmark may vary (documented in its JSON), e.g. a larger PBX's limits.
        env.update({k: v for k, v in os.environ.items() if k in PASSED_SETTINGS})
        env.update({
            # embedded (test) mode with production's servers: the simulators listen on plain-http loopback,
            # which production refuses (it never sends a secret over plain http or to a loopback address)
            "TEAMSCONNECT_MODE": "embedded",
            "TEAMSCONNECT_DATABASE_URL": self.database_url,
            "TEAMSCONNECT_BROKER_URL": BROKER_URL,
            "TEAMSCONNECT_REDIS_URL": COORDINATION_URL,
            "TEAMSCONNECT_ENCRYPTION_KEYS": self.encryption_key,
            "TEAMSCONNECT_CA_BUNDLE": ca_path,
            "TEAMSCONNECT_LOG_LEVEL": "WARNING",
        })
        env.update(self.extra_env)
        return env

    def build(self, seeds: PairedSeeds, *, web: bool = True, processes: bool = False,
              microsoft_args: list[str] | None = None, **microsoft_options: Any) -> Iterator[Stack]:
        """The stack on these seeds. ``processes``: both simulators and the web app as their own processes
        (`teamsconnect sim microsoft|starface`, `teamsconnect web`), as in production; the benchmark
        uses it so that their CPU is not the worker's or the harness's (``microsoft_args``: options of
        `teamsconnect sim microsoft`)."""
        for url in (BROKER_URL, COORDINATION_URL):
            client = redis.Redis.from_url(url)
            client.flushdb()
            client.close()
        if processes:
            yield from self._build_processes(seeds, microsoft_args)
            return
        with MicrosoftSimulator(seeds.microsoft, **microsoft_options) as microsoft, \
                StarfaceSimulator(seeds.starface, webhook_retry_base_s=0.05) as starface:
            env = self.env(microsoft.ca_path)
            settings = load_settings({k: v for k, v in env.items() if k.startswith("TEAMSCONNECT_")})
            runtime = build_runtime(settings)
            set_runtime(runtime)
            configure_broker(BROKER_URL)
            stop_web: Callable[[], None] | None = None
            web_url = ""
            if web:
                web_url, stop_web = serve_web()
            stack = Stack(seeds, microsoft, starface, env, runtime, web_url=web_url)
            try:
                yield stack
            finally:
                stack.stop()
                if stop_web is not None:
                    stop_web()
                set_runtime(None)
