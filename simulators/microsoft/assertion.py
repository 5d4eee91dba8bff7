"""Client assertions (certificate credentials) at the simulated token endpoint.

The format is the one in learn.microsoft.com `entra/identity-platform/certificate-credentials`: a JWT,
header `alg` PS256 (RS256 with the SHA-1 `x5t` is what older MSALs send), `x5t#S256` or `x5t`; claims
`aud` = the token endpoint, `iss` = `sub` = client id, `jti`, `exp`, optional `nbf`, `iat`. Each failure
answers the AADSTS code Entra is seen to answer (sources and the inferred cases in docs/entra-consent.md).
Checks run in this order: form, header, key, signature, audience, issuer/subject, lifetime, replay.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from simulators.microsoft.state import Application, KeyCredential, SimState

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_S = 300  # [I] tolerance for exp/nbf; Entra documents none
_CERT_DOCS = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"


@dataclass
class AssertionRejected(Exception):
    """The token endpoint's answer to a bad assertion: HTTP status, OAuth error, AADSTS code, text."""

    status: int
    error: str
    code: int
    text: str


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _thumbprint(header: dict[str, Any]) -> tuple[str, str]:
    """("sha256" | "sha1", upper-case hex) from the header, x5t#S256 preferred."""
    for name, kind in (("x5t#S256", "sha256"), ("x5t", "sha1")):
        value = header.get(name)
        if isinstance(value, str) and value:
            try:
                return kind, _b64(value).hex().upper()
            except ValueError:
                break
    raise AssertionRejected(
        401,
        "invalid_client",
        50027,
        "Invalid JWT token. No certificate thumbprint specified in token header.",
    )


def _key_found(key: KeyCredential) -> str:
    return f"Found key 'Start={_iso(key.not_before)}, End={_iso(key.not_after)}'"


def _verify_signature(key: KeyCredential, alg: str, signing_input: bytes, signature: bytes) -> bool:
    scheme: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
        if alg == "PS256"
        else padding.PKCS1v15()
    )
    try:
        key.public_key.verify(signature, signing_input, scheme, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def verify_assertion(
    state: SimState,
    application: Application | None,
    client_id: str,
    form: dict[str, str],
    audiences: set[str],
) -> None:
    """Raise AssertionRejected unless the form's client assertion authenticates `client_id`."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise AssertionRejected(
            400,
            "invalid_request",
            90014,
            f"The request body must contain 'client_assertion_type' with the value '{ASSERTION_TYPE}'.",
        )
    parts = form.get("client_assertion", "").split(".")
    try:
        header, claims = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
        if len(parts) != 3 or not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("not a JWS")
    except (IndexError, ValueError):
        raise AssertionRejected(
            401, "invalid_client", 50027, "Invalid JWT token. The token is malformed."
        ) from None
    alg = header.get("alg")
    if alg not in ("PS256", "RS256"):
        raise AssertionRejected(
            401, "invalid_client", 50027, f"Invalid JWT token. Unsupported signing algorithm '{alg}'."
        )
    kind, thumbprint = _thumbprint(header)
    now = state.clock.now()
    keys = application.certificates if application is not None else []
    key = next((k for k in keys if getattr(k, kind) == thumbprint), None)
    if key is None:
        raise AssertionRejected(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
            f"configured keys for app Id '{client_id}'.]",
        )
    if not key.not_before <= now <= key.not_after:
        raise AssertionRejected(
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint "
            f"of key used by client: '{thumbprint}', {_key_found(key)}]",
        )
    if not _verify_signature(key, str(alg), f"{parts[0]}.{parts[1]}".encode(), signature):
        raise AssertionRejected(
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The provided signature value did not "
            f"match the expected signature value., Thumbprint of key used by client: '{thumbprint}', "
            f"{_key_found(key)}]",
        )
    _check_claims(state, claims, client_id, audiences, now)


def _check_claims(
    state: SimState, claims: dict[str, Any], client_id: str, audiences: set[str], now: float
) -> None:
    aud = claims.get("aud")
    if isinstance(aud, list):
        if len(aud) > 1:
            raise AssertionRejected(
                401,
                "invalid_client",
                5002741,
                "Number of audience values in the provided client credential exceed maximum allowed. "
                f"{len(aud)} audience values provided, maximum allowed is 1.",
            )
        aud = aud[0] if aud else None
    if not isinstance(aud, str) or aud.lower() not in audiences:
        raise AssertionRejected(
            401,
            "invalid_client",
            50012,
            f"Client assertion audience claim does not match Realm issuer. Expected the token endpoint "
            f"{sorted(audiences)[0]}, got '{aud}'.",
        )
    if str(claims.get("iss", "")).lower() != client_id:
        raise AssertionRejected(
            401, "invalid_client", 50027, "Invalid JWT token. The issuer (iss) must be the client id."
        )
    if str(claims.get("sub", "")).lower() != client_id:
        raise AssertionRejected(
            401, "invalid_client", 50048, "Subject mismatches Issuer claim in the client assertion."
        )
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise AssertionRejected(
            401, "invalid_client", 50027, "Invalid JWT token. The token has no valid 'exp' claim."
        )
    if now > exp + CLOCK_SKEW_S or now < nbf - CLOCK_SKEW_S:
        raise AssertionRejected(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_iso(now)}, assertion "
            f"valid from {_iso(nbf)}, expiry time of assertion {_iso(exp)}. Review the documentation at "
            f"{_CERT_DOCS} .",
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AssertionRejected(
            401, "invalid_client", 50027, "Invalid JWT token. The 'jti' claim is missing."
        )
    _check_replay(state, client_id, jti, float(exp), now)


def _check_replay(state: SimState, client_id: str, jti: str, exp: float, now: float) -> None:
    """Remember every jti until its assertion expires. Entra documents no replay check and MSAL reuses
    one assertion for up to 9 minutes, so reuse is only refused when `reject_reused_assertions` is set."""
    for key in [k for k, until in state.used_assertions.items() if until + CLOCK_SKEW_S < now]:
        del state.used_assertions[key]
    if (client_id, jti) in state.used_assertions and state.settings.reject_reused_assertions:
        raise AssertionRejected(
            401, "invalid_client", 50013, f"Assertion is invalid: the jti '{jti}' was already used."
        )
    state.used_assertions[(client_id, jti)] = exp
