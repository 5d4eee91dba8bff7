"""The STARFACE hash formulas: REST login secret (reference §1.1) and UCI token (reference §1.2).

Always 128 lowercase hex characters per digest (reference §2: a known Java snippet drops leading zeros).
"""

from __future__ import annotations

import base64
import hashlib


def _sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def login_secret(login_type: str, login_id: str, nonce: str, password: str) -> str:
    """The `secret` of `POST /rest/login` for the login type the PBX announced in `GET /rest/login`.

    Internal: loginId + ":" + hex(SHA512(loginId + nonce + hex(SHA512(password)))).
    ActiveDirectory: Base64(loginId + nonce + password).
    """
    if login_type.replace("_", "").lower() == "activedirectory":
        return base64.b64encode((login_id + nonce + password).encode("utf-8")).decode("ascii")
    return f"{login_id}:{_sha512_hex(login_id + nonce + _sha512_hex(password))}"


def uci_token(login_id: str, password: str) -> str:
    """loginId + ":" + hex(SHA512(loginId + "*" + hex(SHA512(password)))), for `de.vertico.starface.auth`."""
    return f"{login_id}:{_sha512_hex(login_id + '*' + _sha512_hex(password))}"
