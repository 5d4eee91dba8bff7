"""Access tokens the simulated login endpoint issues and the simulated Graph accepts.

JWT-shaped (header.payload.signature, base64url) with the claims Graph cares about (tid, appid, roles, exp,
iat, nbf, aud). Signed with an HMAC key private to one simulator instance so a forged or foreign token
fails like a real one would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

GRAPH_AUDIENCE = "https://graph.microsoft.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenMinter:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def mint(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this instance issued, or None for anything else (expiry not checked)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = _b64(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None
