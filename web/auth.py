"""Bearer-token checks for the admin API and ``/metrics`` (tokens from web/settings.py)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from web.settings import METRICS_TOKEN_ENV, WebSettings


def bearer_matches(request: Request, expected: str) -> bool:
    """True if the request carries ``Authorization: Bearer <expected>`` (compared in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def require_metrics_token(request: Request) -> None:
    """503 while no metrics token is configured (switched off, never open), 401 without the right one."""
    settings: WebSettings = request.app.state.web_settings
    if not settings.metrics_enabled:
        raise HTTPException(503, f"metrics disabled: set {METRICS_TOKEN_ENV}")
    if not bearer_matches(request, settings.metrics_token.get_secret_value()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
