"""Request/response values and the Graph error body shared by every simulator route."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Req:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes = b""
    # Filled by the Graph auth step: the caller's token claims.
    claims: dict[str, Any] = field(default_factory=dict)
    #: The caller's TCP port: requests with the same one came over one (keep-alive) connection.
    client_port: int | None = None

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query_string, keep_blank_values=True).items()}

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Resp:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Resp:
        merged = {"content-type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(), merged)

    def payload(self) -> Any:
        return json.loads(self.body) if self.body else None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Resp:
    """The error body Graph always uses (graph-api.md section 4, S19)."""
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": now_iso(), "request-id": request_id, "client-request-id": request_id},
        }
    }
    return Resp.json(status, body, {"request-id": request_id, **(headers or {})})


def bad_request(message: str, code: str = "BadRequest") -> Resp:
    return graph_error(400, code, message)


def not_found(message: str = "The requested resource was not found.", code: str = "itemNotFound") -> Resp:
    return graph_error(404, code, message)
