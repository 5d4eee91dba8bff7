"""A whole TeamsConnect stack for end-to-end tests and the benchmark: both simulators, real PostgreSQL and
Redis, Celery worker processes, the web app for webhooks, and a test-side tick driver. Nothing of ours is
mocked; tenants are created through the tenant service like an operator's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
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
                     pool: str = "prefork") -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues,
                   "-c", str(concurrency), "--pool", pool, "-n", f"{name}@%h", "--loglevel", "WARNING",
                   "--without-gossip", "--without-mingle"]
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True)
        self.workers.append(process)
        wait_until(lambda: any(name in reply for r in celery_app.control.ping(timeout=0.5) for reply in r),
                   timeout=30, what=f"worker {name} to answer a ping")
        return process

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children (no chance to finish or ack anything)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

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
        is released)."""
        broker = redis.Redis.from_url(BROKER_URL)

        def idle() -> bool:
            queued = sum(broker.llen(queue) for queue in ("apply", "events", "poll"))
            with transaction(self.runtime.sessions) as session:
                claimed = session.scalar(select(func.count()).select_from(AppliedState)
                                         .where(AppliedState.claim_id.is_not(None),
                                                AppliedState.claim_expires_at > utcnow()))
            return queued == 0 and claimed == 0

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
class StackFactory:
    database_url: str
    encryption_key: str

    def env(self, ca_path: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEAMSCONNECT_")}
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
        return env

    def build(self, seeds: PairedSeeds, *, web: bool = True, **microsoft_options: Any) -> Iterator[Stack]:
        for url in (BROKER_URL, COORDINATION_URL):
            client = redis.Redis.from_url(url)
            client.flushdb()
            client.close()
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
