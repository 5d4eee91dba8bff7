"""The Celery app: JSON only, late acks, time limits, one queue per kind of work, events on for Flower.

Start a worker with `teamsconnect worker`
(or `celery -A workers.app worker -Q poll,apply,events,maintenance`).
Beat runs one static schedule: a tick every second (tenants are rows, never beat entries) plus maintenance.
With a Redis broker, beat uses celery-redbeat, whose Redis lock lets several beats run for availability
while only one schedules.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.signals import after_setup_logger, worker_process_init
from kombu import Exchange, Queue
from kombu import pools as kombu_pools

from config import get_settings
from sync.ports import TASK_SOFT_TIME_LIMIT_S, TASK_TIME_LIMIT_S
from workers import queues

TICK_INTERVAL = timedelta(seconds=1)
KEEP_ALIVE_INTERVAL = timedelta(seconds=60)
DRIFT_REPAIR_INTERVAL = timedelta(minutes=5)
DIRECTORY_SYNC_INTERVAL = timedelta(minutes=15)
SECRET_EXPIRY_INTERVAL = timedelta(hours=6)

BEAT_SCHEDULE = {
    "tick": {"task": queues.TASK_TICK, "schedule": TICK_INTERVAL, "options": {"expires": 5}},
    "keep-alive": {"task": queues.TASK_KEEP_ALIVE, "schedule": KEEP_ALIVE_INTERVAL,
                   "options": {"expires": 50}},
    "drift-repair": {"task": queues.TASK_DRIFT_REPAIR, "schedule": DRIFT_REPAIR_INTERVAL,
                     "options": {"expires": 240}},
    "directory-sync": {"task": queues.TASK_DIRECTORY_SYNC, "schedule": DIRECTORY_SYNC_INTERVAL,
                       "options": {"expires": 600}},
    "secret-expiry": {"task": queues.TASK_SECRET_EXPIRY, "schedule": SECRET_EXPIRY_INTERVAL,
                      "options": {"expires": 3600}},
}


#: Broker socket timeouts. A Redis that hangs without closing the connection would hold a publish forever
#: (kombu's default). Workers wait 5 s, as for coordination (sync.runtime.WORKER_REDIS_TIMEOUT_S); the web
#: app publishes webhook events while the bridge waits for its answer, so it gives up after 0.5 s and
#: answers 503 (`use_request_path_broker_timeouts`).
WORKER_BROKER_TIMEOUT_S = 5.0
REQUEST_PATH_BROKER_TIMEOUT_S = 0.5
_broker_timeout_s = WORKER_BROKER_TIMEOUT_S


def build_config(broker_url: str, redis_url: str = "") -> dict[str, object]:
    """Celery settings for a broker; the same for every process (worker, beat, web, flower) but for the
    broker socket timeouts."""
    config: dict[str, object] = {
        "broker_url": broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT_S,
        "task_time_limit": TASK_TIME_LIMIT_S,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        # Flower learns of a task when a worker receives it. A "task-sent" event per task would be a second
        # publish for every task the tick, a poll or a webhook sends, and for a poll (which sends Flower no
        # events of its own unless TEAMSCONNECT_FLOWER_POLL_TASKS is on: workers/poll.py) a task Flower
        # would list as "sent" for ever. Queue lengths are on Flower's Broker page.
        "task_send_sent_event": False,
        # Each queue with its own exchange and key: a bare Queue(name) would bind every queue to the
        # default exchange under one key, and Redis would copy each task into all four queues.
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in queues.ALL_QUEUES],
        "task_default_queue": queues.QUEUE_MAINTENANCE,
        "task_routes": queues.TASK_ROUTES,
        "beat_schedule": BEAT_SCHEDULE,
        "broker_connection_retry_on_startup": True,
        "timezone": "UTC",
    }
    if _is_redis(broker_url):
        # Unacked tasks of a dead worker come back after this; stale polls expire long before.
        config["broker_transport_options"] = {"visibility_timeout": 300, **_socket_timeouts()}
        # kombu's Redis transport with its crash on a lost connection mended (workers/broker.py).
        config["broker_transport"] = "workers.broker:Transport"
        config["beat_scheduler"] = "redbeat.RedBeatScheduler"
        config["redbeat_redis_url"] = redis_url or broker_url
        config["redbeat_redis_options"] = {"health_check_interval": 30}
        config["redbeat_key_prefix"] = "teamsconnect:redbeat"
        # A standby beat looks for the lock every few seconds (Celery's default loop of 300 s let a killed
        # active beat stop polling for five minutes); the active one renews it every tick.
        config["beat_max_loop_interval"] = 2
        config["redbeat_lock_timeout"] = 10
    return config


def _is_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://"))


def _socket_timeouts() -> dict[str, float]:
    return {"socket_timeout": _broker_timeout_s, "socket_connect_timeout": _broker_timeout_s}


def _apply_socket_timeouts() -> None:
    """Puts this process's broker socket timeouts into the configured app's transport options."""
    if _is_redis(str(celery_app.conf.broker_url)):
        celery_app.conf.broker_transport_options = {
            **(celery_app.conf.broker_transport_options or {}), **_socket_timeouts()}
    _drop_pooled_connections()


def use_request_path_broker_timeouts() -> None:
    """Called by the web app: its publishes to a hung broker fail after 0.5 s instead of waiting on."""
    global _broker_timeout_s
    _broker_timeout_s = REQUEST_PATH_BROKER_TIMEOUT_S
    if celery_app.configured:  # else build_config takes them when the settings are first read
        _apply_socket_timeouts()


def _config_from_settings() -> dict[str, object]:
    settings = get_settings()
    config = build_config(settings.broker_url, settings.redis_url)
    config["include"] = [
        "workers.tick", "workers.poll", "workers.apply", "workers.events", "workers.maintenance",
    ]
    return config


def create_app() -> Celery:
    """The app; its settings are read when first needed, so importing never fails on bad settings."""
    app = Celery("teamsconnect")
    app.add_defaults(_config_from_settings)
    return app


celery_app = create_app()


def configure_broker(broker_url: str) -> None:
    """Points this process's Celery app at another broker (tests, the demo), dropping pooled connections."""
    if celery_app.conf.broker_url == broker_url:
        return
    celery_app.conf.broker_url = broker_url
    _apply_socket_timeouts()


def _drop_pooled_connections() -> None:
    """Celery caches kombu's (process-global) connection and producer pools of the previous settings."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@worker_process_init.connect
def _fresh_runtime_in_child(**_: object) -> None:
    """A forked pool process must not reuse the parent's database or HTTP connections."""
    from sync.runtime import reset_after_fork
    from workers import gc_tuning

    reset_after_fork()
    gc_tuning.tune()  # after the child's own start: what it imported and built is kept, not walked


@after_setup_logger.connect
def _tenant_log_levels(logger: object = None, loglevel: object = None, **_: object) -> None:
    """After Celery set up its log handlers: per-tenant levels for our modules (workers/logs.py)."""
    from workers import logs, tenant_log

    tenant_log.install(get_settings())  # each tenant's own lines for the console (before the filter)
    logs.install(get_settings().log_level)
