"""Console sign-in: the session cookie, CSRF tokens, roles and login rate limiting.

The session cookie is the session encrypted and authenticated with the service's Fernet keys
(models/crypto.py), so it can be neither read nor forged without them, and key rotation carries over. It
holds the operator's id, a CSRF token and an expiry; each request re-reads the operator, so removing an
operator or changing a password ends their sessions at once. Every form carries the CSRF token; a POST
without the session's token is refused (403) before anything is read from the form's other fields.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from fastapi import HTTPException, Request
from fastapi.responses import Response

from models import Operator
from models.crypto import SecretBoxError
from sync.runtime import get_runtime

COOKIE = "tc_console"
SESSION_S = 8 * 3600
#: Failed sign-ins allowed per user name (and per client address, times four) within the window.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 600


@dataclass
class ConsoleSession:
    csrf: str
    operator_id: int | None = None
    password_at: float = 0.0
    operator: Operator | None = None

    @property
    def role(self) -> str | None:
        return self.operator.role if self.operator else None


def _new_csrf() -> str:
    return secrets.token_urlsafe(32)


def read_session(request: Request) -> ConsoleSession:
    """The request's session (a fresh anonymous one when the cookie is missing, forged or expired)."""
    cached = getattr(request.state, "console_session", None)
    if cached is not None:
        return cached
    session = ConsoleSession(csrf=_new_csrf())
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = json.loads(get_runtime().box.decrypt(raw))
            if float(data.get("exp", 0)) > time.time():
                session = ConsoleSession(csrf=str(data["csrf"]), operator_id=data.get("op"),
                                         password_at=float(data.get("pwd", 0)))
        except (SecretBoxError, ValueError, KeyError, TypeError):
            pass
    if session.operator_id is not None:
        with get_runtime().sessions() as db:
            operator = db.get(Operator, session.operator_id)
            current = operator is not None and (
                operator.password_changed_at.timestamp() <= session.password_at + 1e-3)
            if operator is not None and current:
                db.expunge(operator)
                session.operator = operator
            else:
                session.operator_id = None
    request.state.console_session = session
    return session


def write_session(request: Request, response: Response, session: ConsoleSession) -> None:
    data: dict[str, Any] = {"csrf": session.csrf, "exp": time.time() + SESSION_S}
    if session.operator is not None:
        data.update(op=session.operator.id, pwd=session.operator.password_changed_at.timestamp())
    secure = get_runtime().settings.public_url.startswith("https://")
    response.set_cookie(COOKIE, get_runtime().box.encrypt(json.dumps(data)), max_age=SESSION_S,
                        httponly=True, samesite="lax", secure=secure, path="/console")


def start_session(operator: Operator) -> ConsoleSession:
    """A new session (new CSRF token) for a signed-in operator: no token survives a sign-in."""
    return ConsoleSession(csrf=_new_csrf(), operator_id=operator.id,
                          password_at=operator.password_changed_at.timestamp(), operator=operator)


def check_csrf(request: Request, given: str | None) -> ConsoleSession:
    session = read_session(request)
    if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise HTTPException(403, "the form's security token is missing or out of date; reload the page and "
                                 "send the form again")
    return session


def actor(session: ConsoleSession) -> str:
    return f"console:{session.operator.username}" if session.operator else "console:?"


class LoginLimiter:
    """Counts failed sign-ins per key in Redis (shared by every web process) or in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, list[float]] = {}
        self._clients: dict[str, redis.Redis] = {}

    def _client(self) -> redis.Redis | None:
        url = get_runtime().settings.redis_url
        if not url:
            return None
        with self._lock:
            if url not in self._clients:
                self._clients[url] = redis.Redis.from_url(url)
            return self._clients[url]

    def failures(self, key: str) -> int:
        client = self._client()
        if client is not None:
            return int(client.get(f"tc:login-fail:{key}") or 0)
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._local.get(key, []) if now - t < FAILURE_WINDOW_S]
            self._local[key] = recent
            return len(recent)

    def fail(self, key: str) -> None:
        client = self._client()
        if client is not None:
            with client.pipeline() as pipe:
                pipe.incr(f"tc:login-fail:{key}")
                pipe.expire(f"tc:login-fail:{key}", FAILURE_WINDOW_S, nx=True)
                pipe.execute()
            return
        with self._lock:
            self._local.setdefault(key, []).append(time.monotonic())

    def clear(self, key: str) -> None:
        client = self._client()
        if client is not None:
            client.delete(f"tc:login-fail:{key}")
        else:
            with self._lock:
                self._local.pop(key, None)


LIMITER = LoginLimiter()


def limit_keys(request: Request, username: str) -> list[tuple[str, int]]:
    address = request.client.host if request.client else "unknown"
    return [(f"user:{username.strip().lower()}", MAX_FAILURES), (f"ip:{address}", MAX_FAILURES * 4)]
