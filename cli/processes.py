"""The long-running processes: `teamsconnect worker | beat | web | flower`, and `teamsconnect healthcheck ...`
for the containers' health checks (compose/compose.yaml).

Worker, beat and Flower run Celery's own commands through the Python API on `workers.app.celery_app`, so
they use exactly the broker and settings of every other process. They refuse the in-process broker
(`memory://`): a separate process cannot share it, and a worker that never receives a task would fail
silently. Flower only ever shows task arguments, and tasks carry ids, never secrets (design.md).
"""

from __future__ import annotations

import importlib.util
import os
import socket
from datetime import UTC, datetime, timedelta

import httpx
import typer

from cli.errors import fail_on_bad_settings
from config import Settings, get_settings
from workers.queues import ALL_QUEUES

BEAT_STALE_AFTER = timedelta(seconds=30)  # the tick entry runs every second; 30 s without one = dead beat


def _settings(process: str) -> Settings:
    """Validated settings, or exit 2 naming the variable; a separate process needs a shared broker."""
    with fail_on_bad_settings():
        settings = get_settings()
    if settings.broker_url.startswith("memory://"):
        typer.secho(
            f"error: TEAMSCONNECT_BROKER_URL is memory:// (in-process), which a separate {process} process "
            "cannot share; set TEAMSCONNECT_BROKER_URL=redis://HOST:6379/0 (compose/ does) or run "
            "everything in one process with `teamsconnect demo`",
            err=True, fg=typer.colors.RED,
        )
        raise typer.Exit(2)
    return settings


def parse_queues(value: str) -> list[str]:
    """`poll,apply` -> ["poll", "apply"]; unknown names are rejected with the list of known ones."""
    names = list(dict.fromkeys(q.strip() for q in value.split(",") if q.strip()))
    unknown = [q for q in names if q not in ALL_QUEUES]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown queue {', '.join(unknown) or '(none)'}; use a comma-separated subset of "
            f"{','.join(ALL_QUEUES)}",
            param_hint="--queues",
        )
    return names


def worker_argv(queues: list[str], concurrency: int | None, loglevel: str, pool: str | None) -> list[str]:
    """The `celery worker` arguments for these options."""
    argv = ["worker", f"--queues={','.join(queues)}", f"--loglevel={loglevel}"]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    if pool is not None:
        argv.append(f"--pool={pool}")
    return argv


def worker(
    queues: str = typer.Option(",".join(ALL_QUEUES), "--queues", "-Q", help="Comma-separated queues."),
    concurrency: int | None = typer.Option(None, "--concurrency", "-c", min=1,
                                           help="Child processes (default: CPU count)."),
    pool: str | None = typer.Option(None, "--pool", help="prefork (default), threads or solo."),
    loglevel: str | None = typer.Option(None, "--loglevel", help="Default: TEAMSCONNECT_LOG_LEVEL."),
) -> None:
    """Run a Celery worker (all four queues by default); start several to scale out."""
    names = parse_queues(queues)
    settings = _settings("worker")
    from workers.app import celery_app  # imported late: `teamsconnect --help` stays fast

    celery_app.worker_main(worker_argv(names, concurrency, (loglevel or settings.log_level).upper(), pool))


def beat(
    loglevel: str | None = typer.Option(None, "--loglevel", help="Default: TEAMSCONNECT_LOG_LEVEL."),
) -> None:
    """Run Celery beat (the tick and maintenance); with Redis, celery-redbeat's lock lets a 2nd beat wait."""
    settings = _settings("beat")
    from workers.app import celery_app

    celery_app.start(["beat", f"--loglevel={(loglevel or settings.log_level).upper()}"])


def flower(
    port: int = typer.Option(5555, "--port", help="Port of the Flower UI."),
    address: str = typer.Option("127.0.0.1", "--address", help="Listen address (0.0.0.0 in a container)."),
) -> None:
    """Run Flower on the same broker. Set FLOWER_BASIC_AUTH=user:password (Flower can stop workers)."""
    settings = _settings("flower")
    has_auth = os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH")
    if settings.mode == "production" and not has_auth:
        typer.secho("warning: Flower runs without authentication; set FLOWER_BASIC_AUTH=user:password",
                    err=True, fg=typer.colors.YELLOW)
    from workers.app import celery_app

    celery_app.start(["flower", f"--port={port}", f"--address={address}"])


def web(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 in a container)."),
    port: int = typer.Option(8000, "--port", help="Port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Uvicorn worker processes."),
) -> None:
    """Run the web app (webhook receiver, admin API, /healthz, /metrics) with uvicorn."""
    with fail_on_bad_settings():
        settings = get_settings()
    if importlib.util.find_spec("web") is None or importlib.util.find_spec("web.app") is None:
        typer.secho("error: the web app (web/app.py) is not installed", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    from web.settings import load_web_settings

    with fail_on_bad_settings():  # a too-short admin or metrics token: one clear line, not a traceback
        load_web_settings()
    import uvicorn

    uvicorn.run("web.app:app", host=host, port=port, workers=workers, proxy_headers=True,
                log_level=settings.log_level.lower())


# --- health checks (exit 0 healthy, 1 not) -----------------------------------------------------------------

healthcheck_app = typer.Typer(help="Container health checks: exit code 0 = healthy, 1 = not.",
                              no_args_is_help=True)


def _probe_app(settings: Settings):  # type: ignore[no-untyped-def]
    """A Celery app on the current settings' broker, for probing only (the module-level app of this
    process may have been built from other settings, e.g. in tests)."""
    from celery import Celery

    from workers.app import build_config

    app = Celery("teamsconnect-healthcheck")
    app.conf.update(build_config(settings.broker_url, settings.redis_url))
    return app


def _verdict(healthy: bool, message: str) -> None:
    typer.echo(("healthy: " if healthy else "unhealthy: ") + message)
    if not healthy:
        raise typer.Exit(1)


@healthcheck_app.command("worker")
def check_worker(timeout: float = typer.Option(5.0, help="Seconds to wait for the answer.")) -> None:
    """This host's worker (celery@HOSTNAME) answers a ping over the broker."""
    app = _probe_app(_settings("worker"))
    node = f"celery@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[node], timeout=timeout) or []
    finally:
        app.close()
    _verdict(any(node in reply for reply in replies), f"{node} {'answered' if replies else 'did not answer'}")


@healthcheck_app.command("beat")
def check_beat() -> None:
    """The beat's tick entry ran within the last 30 s (read from celery-redbeat's schedule in Redis)."""
    from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf

    app = _probe_app(_settings("beat"))
    try:
        ensure_conf(app)
        entry = RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, "tick"), app=app)
    except KeyError:
        _verdict(False, "no beat has registered the tick entry yet")
        return
    except Exception as exc:  # redis errors: report, do not crash the health check
        _verdict(False, f"cannot read the beat schedule: {type(exc).__name__}")
        return
    last = entry.last_run_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    fresh = last is not None and datetime.now(UTC) - last < BEAT_STALE_AFTER
    _verdict(fresh, f"last tick at {last.isoformat() if last else 'never'}")


@healthcheck_app.command("http")
def check_http(url: str = typer.Argument(..., help="E.g. http://127.0.0.1:8000/healthz"),
               timeout: float = typer.Option(5.0)) -> None:
    """The URL answers with a status below 500 (Flower's /healthcheck answers 401 behind basic auth)."""
    try:
        status = httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError as exc:
        _verdict(False, f"{url}: {type(exc).__name__}")
        return
    _verdict(status < 500, f"{url} answered {status}")


@healthcheck_app.command("db")
def check_db() -> None:
    """The database answers and its schema is at the newest migration (`teamsconnect db upgrade` ran)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import SQLAlchemyError

    from models.db import make_engine
    from models.migrate import alembic_config

    with fail_on_bad_settings():
        url = get_settings().effective_database_url
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        _verdict(False, f"database unreachable: {type(exc).__name__}")
        return
    finally:
        engine.dispose()
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    _verdict(current == heads, f"schema at {', '.join(sorted(current)) or 'nothing'}, newest is "
                               f"{', '.join(sorted(heads))}")
