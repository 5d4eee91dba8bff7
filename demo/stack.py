"""The demo's whole system in one process, on embedded defaults: a SQLite file in a data dir, the
in-process (``memory://``) broker with a Celery worker in threads, local coordination (no Redis), both
simulators and the web app on free local ports.

The pieces are the ones production runs (tasks, engine, connectors, web app); only URLs differ. The tick
is driven here exactly as beat runs it (``scheduler.tick.run_tick`` with the Celery task queue).
Everything started here is stopped by ``close()`` (or leaving the ``with`` block), in reverse order.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.contrib.testing.worker import start_worker
from sqlalchemy import delete, select

from config.settings import load_settings
from embedded.stack import Stack, serve_web
from models import ChangeLog, Tenant, UserLink, migrate
from models.db import transaction
from presence.linking import LinkState
from simulators.microsoft import MicrosoftSimulator
from simulators.paired import FIRST_ACCOUNT_ID, PairedSeeds
from simulators.starface import StarfaceSimulator
from sync.runtime import build_runtime, set_runtime
from workers import queues
from workers.app import celery_app, configure_broker
from workers.task_queue import CELERY_QUEUE

TENANT_NAME = "demo"
BROKER_URL = "memory://"
#: The in-memory transport sleeps this long when a queue is empty (kombu's default is a whole second).
BROKER_POLLING_INTERVAL_S = 0.01
WORKER_THREADS = 4
#: Loggers of the running system; the demo shows their warnings in its own view instead of on stderr.
SYSTEM_LOGGERS = ("workers", "scheduler", "sync", "tenants", "web", "connectors", "models", "presence",
                  "embedded", "celery", "kombu", "uvicorn", "httpx", "msal")


class _Captured(logging.Handler):
    """Collects the system's warnings for the demo's log (they would tear up a live terminal view)."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink(f"{record.levelname.lower()}: {record.getMessage()}")


@dataclass
class Change:
    """One ChangeLog row as the demo shows it."""

    id: int
    user: int | None
    target: str
    cause: str
    after: dict[str, Any]
    latency_ms: float | None


class DemoStack:
    """Builds and owns the in-process system. Use as a context manager; ``stack`` drives it."""

    def __init__(self, seeds: PairedSeeds, data_dir: Path | None, poll_interval_s: float,
                 on_log: Callable[[str], None]) -> None:
        self.seeds = seeds
        self._data_dir = data_dir
        self._poll_interval_s = poll_interval_s
        self._on_log = on_log
        self._exit = ExitStack()
        self.stack: Stack | None = None
        self._account_by_link: dict[int, int] = {}
        self._linked = 0

    # --- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        exit_ = self._exit
        data_dir = self._data_dir
        if data_dir is None:
            data_dir = Path(exit_.enter_context(tempfile.TemporaryDirectory(prefix="teamsconnect-demo-")))
        self._quiet_system_loggers()
        microsoft = exit_.enter_context(MicrosoftSimulator(self.seeds.microsoft, fractional_retry_after=True))
        starface = exit_.enter_context(StarfaceSimulator(self.seeds.starface, webhook_retry_base_s=0.05))
        settings = load_settings({
            "TEAMSCONNECT_MODE": "embedded",
            "TEAMSCONNECT_DATA_DIR": str(data_dir),
            "TEAMSCONNECT_BROKER_URL": BROKER_URL,
            "TEAMSCONNECT_CA_BUNDLE": microsoft.ca_path,
            "TEAMSCONNECT_LOG_LEVEL": "WARNING",
        })
        migrate.upgrade(settings.effective_database_url)
        runtime = build_runtime(settings)
        set_runtime(runtime)
        exit_.callback(set_runtime, None)  # closes the runtime (clients, engine)
        self._use_memory_broker()
        web_url, stop_web = serve_web()
        exit_.callback(stop_web)
        worker = exit_.enter_context(start_worker(
            celery_app, pool="threads", concurrency=WORKER_THREADS, perform_ping_check=False,
            queues=list(queues.ALL_QUEUES), loglevel="ERROR", shutdown_timeout=30,
        ))
        # A warm stop first: the embedded worker's own exit is a cold one, which leaves the thread pool
        # (a ThreadPoolExecutor) running.
        exit_.callback(worker.stop)
        stack = Stack(self.seeds, microsoft, starface, {}, runtime, web_url=web_url)
        exit_.callback(stack.stop)
        self._forget_previous_demo(stack)
        stack.add_tenant(TENANT_NAME, poll_interval_s=self._poll_interval_s)
        self.stack = stack
        with transaction(runtime.sessions) as session:
            rows = session.execute(select(UserLink.id, UserLink.starface_account_id, UserLink.state)
                                   .where(UserLink.tenant_id == stack.tenant_id))
            for link_id, account, state in rows:
                self._account_by_link[link_id] = account
                self._linked += state == LinkState.LINKED.value

    def _quiet_system_loggers(self) -> None:
        handler = _Captured(self._on_log)
        for name in SYSTEM_LOGGERS:
            logger = logging.getLogger(name)
            saved = (logger.propagate, logger.level)
            logger.propagate = False
            logger.addHandler(handler)
            if logger.level == logging.NOTSET or logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)
            self._exit.callback(self._restore_logger, logger, handler, saved)

    @staticmethod
    def _restore_logger(logger: logging.Logger, handler: logging.Handler, saved: tuple[bool, int]) -> None:
        logger.removeHandler(handler)
        logger.propagate, level = saved
        logger.setLevel(level)

    def _use_memory_broker(self) -> None:
        """Points the Celery app at the in-process broker (and back to what it was when the demo ends)."""
        previous_url = celery_app.conf.broker_url
        previous_options = dict(celery_app.conf.broker_transport_options or {})
        celery_app.conf.broker_transport_options = {"polling_interval": BROKER_POLLING_INTERVAL_S}
        configure_broker(BROKER_URL)
        with celery_app.connection_for_write() as connection:  # a previous run's leftovers in this process
            for name in queues.ALL_QUEUES:
                connection.default_channel.queue_purge(name)

        def restore() -> None:
            celery_app.conf.broker_transport_options = previous_options
            configure_broker(previous_url)

        self._exit.callback(restore)

    def _forget_previous_demo(self, stack: Stack) -> None:
        """A reused --data-dir may hold an earlier demo tenant: start over (its rows go by cascade)."""
        with transaction(stack.runtime.sessions) as session:
            session.execute(delete(Tenant).where(Tenant.name == TENANT_NAME))

    # --- driving ------------------------------------------------------------------------------------
    @property
    def s(self) -> Stack:
        assert self.stack is not None, "the demo stack is not started"
        return self.stack

    def tick(self) -> None:
        self.s.tick()

    def drift_repair(self) -> None:
        """What beat's drift-repair entry fans out: one repair task for the tenant, through the broker."""
        CELERY_QUEUE.drift_repair(self.s.tenant_id)

    def keep_alive(self) -> None:
        """Beat's keep-alive entry: refresh the Teams sessions of calls in progress."""
        celery_app.send_task(queues.TASK_KEEP_ALIVE, queue=queues.QUEUE_MAINTENANCE, expires=50)

    def user_index(self, link_id: int | None) -> int | None:
        account = self._account_by_link.get(link_id) if link_id is not None else None
        return None if account is None else account - FIRST_ACCOUNT_ID

    def changes_after(self, last_id: int) -> list[Change]:
        with transaction(self.s.runtime.sessions) as session:
            rows = session.scalars(select(ChangeLog).where(ChangeLog.tenant_id == self.s.tenant_id,
                                                           ChangeLog.id > last_id).order_by(ChangeLog.id))
            return [Change(row.id, self.user_index(row.user_link_id), row.target, row.cause, dict(row.after),
                           row.latency_ms) for row in rows]

    def linked_users(self) -> int:
        """Users the directory sync linked by e-mail (the others are reported, never guessed)."""
        return self._linked
