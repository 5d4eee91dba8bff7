"""The two ways our app proves itself to Entra: a client secret (a customer's own app registration, as in
the STARFACE module) or a certificate (the provider's multi-tenant app, design.md point 6).

`CertificateCredential` holds a private key and its certificate (PEM), checks that they belong together
and computes the thumbprints Entra identifies the certificate by. Its repr and every error text name the
certificate (subject, thumbprint), never the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.graph._errors import GraphCredentialError

# MSAL >= 1.35 computes the SHA-256 thumbprint itself when given the certificate without a thumbprint and
# then signs PS256 with `x5t#S256`, the format the certificate-credentials page documents. Older MSALs
# only know the SHA-1 `x5t` (RS256), so they are handed the SHA-1 thumbprint.
_MSAL_SHA256 = tuple(int(p) for p in msal.__version__.split(".")[:2]) >= (1, 35)


@dataclass(frozen=True, repr=False)
class CertificateCredential:
    """A certificate credential: RSA private key + X.509 certificate, both PEM."""

    private_key_pem: str
    certificate_pem: str
    passphrase: str | None = None
    sha1_thumbprint: str = field(init=False)
    sha256_thumbprint: str = field(init=False)
    subject: str = field(init=False)
    not_after: datetime = field(init=False)

    def __post_init__(self) -> None:
        try:
            cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        except ValueError as exc:
            raise GraphCredentialError(
                "The certificate is not a PEM-encoded X.509 certificate.",
                "Paste the certificate (-----BEGIN CERTIFICATE-----) uploaded to the app registration.",
            ) from exc
        try:
            key = serialization.load_pem_private_key(
                self.private_key_pem.encode(), self.passphrase.encode() if self.passphrase else None
            )
        except (ValueError, TypeError):
            # Not chained: nothing from the key's parser may end up in a log or a traceback.
            raise GraphCredentialError(
                "The private key could not be read (not PEM, encrypted without the right passphrase, "
                "or damaged).",
                "Provide the certificate's unencrypted PKCS#8 private key, or its passphrase.",
            ) from None
        subject = cert.subject.rfc4514_string()
        if not isinstance(key, rsa.RSAPrivateKey):
            raise GraphCredentialError(
                f"The private key for {subject} is not an RSA key.",
                "Entra signs client assertions with RSA only: create an RSA (2048 bit or more) certificate.",
            )
        public = cert.public_key()
        if (
            not isinstance(public, rsa.RSAPublicKey)
            or public.public_numbers() != key.public_key().public_numbers()
        ):
            raise GraphCredentialError(
                f"The private key does not belong to the certificate {subject}.",
                "Provide the private key that was generated together with this certificate.",
            )
        object.__setattr__(self, "sha1_thumbprint", cert.fingerprint(hashes.SHA1()).hex().upper())  # noqa: S303
        object.__setattr__(self, "sha256_thumbprint", cert.fingerprint(hashes.SHA256()).hex().upper())
        object.__setattr__(self, "subject", subject)
        object.__setattr__(self, "not_after", cert.not_valid_after_utc)

    def __repr__(self) -> str:
        return f"CertificateCredential(subject={self.subject!r}, thumbprint={self.sha1_thumbprint!r})"

    def msal_credential(self) -> dict[str, Any]:
        """The `client_credential` dict for msal.ConfidentialClientApplication."""
        credential: dict[str, Any] = {
            "private_key": self.private_key_pem,
            "public_certificate": self.certificate_pem,
        }
        if self.passphrase:
            credential["passphrase"] = self.passphrase
        if not _MSAL_SHA256:
            credential["thumbprint"] = self.sha1_thumbprint
        return credential

    def fingerprint(self) -> str:
        """Identifies this credential in cache keys: the certificate and a digest of the key, no secret."""
        digest = hashes.Hash(hashes.SHA256())
        digest.update(self.private_key_pem.encode())
        return f"cert:{self.sha256_thumbprint[:16]}:{digest.finalize().hex()[:16]}"


ClientCredential = str | CertificateCredential
