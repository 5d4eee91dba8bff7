"""Request/response values passed between the HTTP server and the route modules (REST, XML-RPC, control)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

JSON_TYPE = "application/json;charset=UTF-8"  # reference §3: every REST response


@dataclass
class Request:
    method: str
    path: str
    query_string: str
    headers: Message  # case-insensitive lookups, as HTTP header names are
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query_string, keep_blank_values=True).items()}

    def json(self) -> Any:
        """Parsed JSON body; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), JSON_TYPE)


def error_response(status: int, code: str, message: str) -> Response:
    """Error body `{code, message}` (reference §1.1, S4; §3.3)."""
    return json_response(status, {"code": code, "message": message})


def no_content() -> Response:
    return Response(204)
