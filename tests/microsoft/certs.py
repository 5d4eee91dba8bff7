"""Test-time certificates (cryptography) and hand-signed client assertions, for the cases MSAL never
produces (forged signature, wrong audience, ...)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFixture:
    key_pem: str
    cert_pem: str
    sha256: bytes
    key: rsa.RSAPrivateKey


def make_certificate(
    name: str = "TeamsConnect Cloud", valid_from_days: int = -1, valid_to_days: int = 365
) -> CertFixture:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=valid_from_days))
        .not_valid_after(now + timedelta(days=valid_to_days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return CertFixture(
        key_pem=key_pem,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        sha256=cert.fingerprint(hashes.SHA256()),
        key=key,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_assertion(
    signer: CertFixture,
    client_id: str,
    audience: Any,
    *,
    named: CertFixture | None = None,
    lifetime_s: float = 600,
    issued_at: float | None = None,
    **claims: Any,
) -> str:
    """A PS256 client assertion signed with `signer`'s key, naming `named` (default: signer) in x5t#S256."""
    now = time.time() if issued_at is None else issued_at
    header = {"alg": "PS256", "typ": "JWT", "x5t#S256": _b64((named or signer).sha256)}
    payload = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + lifetime_s),
        **claims,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = signer.key.sign(
        signing_input.encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    return f"{signing_input}.{_b64(signature)}"
