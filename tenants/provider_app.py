"""The provider's multi-tenant Entra application (one for all customers who onboard by admin consent):
its credential read from the settings, and the warning before its certificate expires.

A tenant chooses its app (`microsoft.app`): "own" is the customer's app registration with its client id
and secret (as in the STARFACE module); "provider" is this app, for which the customer's Global
Administrator only gives admin consent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config import Settings
from config.settings import ENV_PREFIX
from connectors.graph import CertificateCredential, GraphCredentialError

CERTIFICATE_WARNING_DAYS = 30


class ProviderAppMissing(GraphCredentialError):
    """A tenant uses the provider app, but this deployment has none configured."""

    def __init__(self) -> None:
        super().__init__(
            "This tenant signs in with the provider's multi-tenant app, but none is configured.",
            f"set {ENV_PREFIX}PROVIDER_CLIENT_ID and {ENV_PREFIX}PROVIDER_CERTIFICATE + "
            f"{ENV_PREFIX}PROVIDER_PRIVATE_KEY (or {ENV_PREFIX}PROVIDER_CLIENT_SECRET), or switch the tenant "
            "to its own app (microsoft.app=own with client_id and client_secret)",
        )


@dataclass(frozen=True, repr=False)
class ProviderApp:
    """The provider app's client id and credential (a certificate, or a client secret as fallback)."""

    client_id: str
    credential: CertificateCredential | str

    def __repr__(self) -> str:
        return f"ProviderApp(client_id={self.client_id!r})"

    @property
    def certificate_expires_at(self) -> datetime | None:
        credential = self.credential
        return credential.not_after if isinstance(credential, CertificateCredential) else None

    @property
    def fingerprint(self) -> str:
        """Identifies the credential (to rebuild cached clients when it changes), never its secret."""
        credential = self.credential
        if isinstance(credential, CertificateCredential):
            return credential.fingerprint()
        return hashlib.sha256(credential.encode()).hexdigest()[:16]


def _pem(value: str) -> str:
    """PEM text as given, or read from the file it names."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text
    try:
        return Path(text).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphCredentialError(
            f"The provider app's PEM file {text!r} cannot be read ({type(exc).__name__}).",
            "Point the setting at a readable PEM file, or put the PEM text itself into it.",
        ) from None


def provider_app(settings: Settings) -> ProviderApp | None:
    """The configured provider app, or None; raises GraphCredentialError for an unusable credential."""
    if not settings.provider_app_configured:
        return None
    client_id = settings.provider_client_id.strip().lower()
    if settings.provider_certificate.strip():
        credential: CertificateCredential | str = CertificateCredential(
            _pem(settings.provider_private_key.get_secret_value()), _pem(settings.provider_certificate))
    else:
        credential = settings.provider_client_secret.get_secret_value().strip()
    return ProviderApp(client_id, credential)


def certificate_warning(app: ProviderApp | None, now: datetime | None = None) -> str | None:
    """A warning when the provider app's certificate expires within 30 days (or has), else None."""
    expires = app.certificate_expires_at if app else None
    if expires is None:
        return None
    now = now or datetime.now(UTC)
    when = expires.date().isoformat()
    fix = (f"upload a new certificate to the provider app (App registrations > Certificates & secrets) and "
           f"set {ENV_PREFIX}PROVIDER_CERTIFICATE and {ENV_PREFIX}PROVIDER_PRIVATE_KEY to it")
    if expires <= now:
        return f"the provider app's certificate expired on {when}: {fix}"
    if expires - now < timedelta(days=CERTIFICATE_WARNING_DAYS):
        return f"the provider app's certificate expires on {when} (in {(expires - now).days} days): {fix}"
    return None
