"""Readiness: can this process do its job right now? Database, coordination Redis and the broker, each
with a short deadline, so a hung dependency is reported as down instead of hanging the probe.

``/healthz`` stays a liveness check (the database answers); ``/readyz`` (web/app.py) uses this and answers
503 naming what is down, so a load balancer stops sending webhooks to a process that could not take them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from sqlalchemy import text

from sync.runtime import REDIS_TIMEOUT_S, Runtime, redis_client

logger = logging.getLogger(__name__)

#: Each check must answer within this; the probe as a whole takes at most about this long.
CHECK_TIMEOUT_S = 1.0
#: Checks run here, so one that hangs past its deadline does not hold the probe (a few threads at most).
_POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readiness")


def _database(runtime: Runtime) -> Callable[[], None]:
    def check() -> None:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


def _broker(broker_url: str) -> Callable[[], None]:
    def check() -> None:
        if broker_url.startswith(("redis://", "rediss://")):
            client = redis_client(broker_url, REDIS_TIMEOUT_S)
            try:
                client.ping()
            finally:
                client.close()

    return check


def readiness(runtime: Runtime, broker_url: str, timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, str]:
    """``{"database": ..., "redis": ..., "broker": ...}``: "ok", or what is wrong (no URL: it may hold a
    password)."""
    checks = {"database": _database(runtime), "redis": runtime.coordination.ping,
              "broker": _broker(broker_url)}
    futures = {name: _POOL.submit(check) for name, check in checks.items()}
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = f"no answer within {timeout_s:g} s"
        except Exception as exc:  # any failure of a dependency means "not ready", never a 500
            results[name] = f"unreachable ({type(exc).__name__})"
        if results[name] != "ok":
            logger.warning("readiness: %s %s", name, results[name])
    return results
