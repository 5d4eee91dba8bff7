"""The ASGI app (``uvicorn web.app:app``): webhook receiver, admin API, ``/healthz`` and ``/metrics``.

``/metrics`` needs ``Authorization: Bearer $TEAMSCONNECT_METRICS_TOKEN`` (unset: 503, switched off): it
names every customer, and it shares the public port with the webhook.

Database, secrets box and coordination come from ``sync.runtime.get_runtime()``, the same per-process
resources the workers use, so tests and the demo install theirs with ``set_runtime``. Errors are JSON
``{"error": "..."}`` everywhere.
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.readiness import readiness
from sync.runtime import get_runtime, use_request_path_timeouts
from web import admin, api_write, consent, hooks
from web.auth import require_metrics_token
from web.console import routes as console
from web.metrics import WebMetrics
from web.settings import WebSettings, load_web_settings
from workers.app import celery_app, use_request_path_broker_timeouts

logger = logging.getLogger(__name__)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return JSONResponse(status_code=400, content={"error": f"{where}: {first.get('msg', 'invalid')}"})


def healthz() -> JSONResponse:
    """200 while the database answers, else 503 (the URL is not shown: it may carry a password)."""
    try:
        with get_runtime().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        logger.error("health check: database unreachable (%s)", type(exc).__name__)
        return JSONResponse(status_code=503, content={"status": "unavailable", "database": "unreachable"})
    return JSONResponse(content={"status": "ok", "database": "ok"})


def readyz() -> JSONResponse:
    """200 when database, coordination Redis and broker all answer within 1 s; else 503 naming which not."""
    results = readiness(get_runtime(), str(celery_app.conf.broker_url))  # the broker this process uses
    down = [name for name, state in results.items() if state != "ok"]
    if down:
        return JSONResponse(status_code=503, content={
            "status": "unavailable", "error": f"not ready: {', '.join(down)} down", **results})
    return JSONResponse(content={"status": "ready", **results})


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """A new app; ``settings`` default to the environment (``TEAMSCONNECT_ADMIN_TOKEN``,
    ``TEAMSCONNECT_METRICS_TOKEN``); a bad token raises SettingsError naming the variable."""
    use_request_path_timeouts()  # the bridge contract: an answer within 1 s, also while Redis hangs
    use_request_path_broker_timeouts()  # ... and while the broker hangs
    app = FastAPI(title="TeamsConnect Cloud", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web_settings = settings or load_web_settings()
    metrics = WebMetrics(lambda: get_runtime().sessions)
    app.state.metrics = metrics
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.include_router(hooks.router)
    app.include_router(admin.router)
    app.include_router(consent.router)
    app.include_router(api_write.router)
    app.include_router(console.router)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])

    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"],
                      dependencies=[Depends(require_metrics_token)])
    return app


app = create_app()
