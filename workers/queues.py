"""Queue and task names, in one place: the web app and tests enqueue by name without importing tasks."""

from __future__ import annotations

QUEUE_POLL = "poll"
QUEUE_APPLY = "apply"
QUEUE_EVENTS = "events"
QUEUE_MAINTENANCE = "maintenance"
ALL_QUEUES = (QUEUE_POLL, QUEUE_APPLY, QUEUE_EVENTS, QUEUE_MAINTENANCE)

TASK_TICK = "teamsconnect.scheduler.tick"
TASK_POLL_BATCH = "teamsconnect.poll.batch"
TASK_POLL_MANY = "teamsconnect.poll.many"
TASK_APPLY_STARFACE = "teamsconnect.apply.starface"
TASK_APPLY_STARFACE_BATCH = "teamsconnect.apply.starface_batch"
TASK_STARFACE_EVENT = "teamsconnect.events.starface"
TASK_KEEP_ALIVE = "teamsconnect.maintenance.keep_alive"
TASK_DIRECTORY_SYNC = "teamsconnect.maintenance.directory_sync"
TASK_DRIFT_REPAIR = "teamsconnect.maintenance.drift_repair"
TASK_SECRET_EXPIRY = "teamsconnect.maintenance.secret_expiry"
TASK_SYNC_TENANT_DIRECTORY = "teamsconnect.maintenance.directory_sync_tenant"
TASK_REPAIR_TENANT = "teamsconnect.maintenance.drift_repair_tenant"

TASK_ROUTES = {
    TASK_TICK: QUEUE_POLL,
    TASK_POLL_BATCH: QUEUE_POLL,
    TASK_POLL_MANY: QUEUE_POLL,
    TASK_APPLY_STARFACE: QUEUE_APPLY,
    TASK_APPLY_STARFACE_BATCH: QUEUE_APPLY,
    TASK_STARFACE_EVENT: QUEUE_EVENTS,
    TASK_KEEP_ALIVE: QUEUE_MAINTENANCE,
    TASK_DIRECTORY_SYNC: QUEUE_MAINTENANCE,
    TASK_DRIFT_REPAIR: QUEUE_MAINTENANCE,
    TASK_SECRET_EXPIRY: QUEUE_MAINTENANCE,
    TASK_SYNC_TENANT_DIRECTORY: QUEUE_MAINTENANCE,
    TASK_REPAIR_TENANT: QUEUE_MAINTENANCE,
}
