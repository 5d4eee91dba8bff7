"""A stored tenant read back for people: its tier, what it lacks without the bridge, secret-expiry warnings
and its configuration with every secret shown as "set" / "not set" (CLI, admin API, health)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models import Tenant
from tenants.service import stored_config

SECRET_EXPIRY_WARNING_DAYS = 30
#: Features that need the bridge (starface-bridge.md, tier 2); a REST-only tenant gets DND only.
BRIDGE_FEATURES = (
    "chat-status text in STARFACE",
    "telephony status 'on the phone' in the STARFACE app",
    "STARFACE calls -> Teams presence",
    "manual STARFACE DND -> Teams",
)


def tier(tenant: Tenant) -> str:
    """"bridge" (tier 2) or "REST-only" (tier 1), see starface-bridge.md."""
    return "bridge" if tenant.has_bridge else "REST-only"


def secret_expiry_warning(expires_at: datetime | None, now: datetime | None = None) -> str | None:
    """A warning when the client secret expires within 30 days (or has expired), else None."""
    if expires_at is None:
        return None
    now = now or datetime.now(UTC)
    left = expires_at - now
    when = expires_at.date().isoformat()
    if left <= timedelta(0):
        return (
            f"the Microsoft client secret expired on {when}: create a new one under App registrations > "
            "Certificates & secrets and set it with `teamsconnect tenant set NAME microsoft.client_secret`"
        )
    if left < timedelta(days=SECRET_EXPIRY_WARNING_DAYS):
        return (
            f"the Microsoft client secret expires on {when} (in {left.days} days): create a new one and set "
            "it with `teamsconnect tenant set NAME microsoft.client_secret` before then"
        )
    return None


def consent_status(tenant: Tenant) -> str:
    """The customer's admin consent to the provider app in words, with the fix where one is needed."""
    consent = tenant.consent
    if consent is None or consent.status == "pending":
        return ("not given yet: send the link from `teamsconnect tenant consent-link NAME` to the "
                "customer's Global Administrator").replace("NAME", tenant.name)
    if consent.status == "granted":
        return f"given for directory {consent.directory_id}"
    return f"{consent.status} ({consent.error_code}): {consent.error_description}"
#: Entra issues client secrets for at most 24 months (the module's doc: "max. 2 Jahre gültig").
SECRET_MAX_LIFETIME = timedelta(days=731)


def implausible_secret_expiry(expires_at: datetime | None, now: datetime | None = None) -> str | None:
    """A warning when an expiry date entered for a secret cannot be right: more than two years ahead
    (Entra's maximum), or already past when the date is entered; else None."""
    if expires_at is None:
        return None
    now = now or datetime.now(UTC)
    when = expires_at.date().isoformat()
    if expires_at - now > SECRET_MAX_LIFETIME:
        return (
            f"microsoft.secret_expires_at: {when} is more than two years ahead, but Entra issues client "
            "secrets for at most 24 months: copy the date from App registrations > Certificates & secrets > "
            "Client secrets > Expires (a wrong date hides the expiry warning)"
        )
    if expires_at <= now:
        return (
            f"microsoft.secret_expires_at: {when} is in the past, so this secret has expired and sign-ins "
            "will fail (AADSTS7000222): create a new secret under App registrations > Certificates & "
            "secrets and set it with `teamsconnect tenant set NAME microsoft.client_secret`"
        )
    return None


def tenant_summary(tenant: Tenant) -> dict[str, Any]:
    """The tenant's configuration without secrets (each shown as "set" / "not set"), its id and tier."""
    summary = stored_config(tenant, lambda ciphertext: "set" if ciphertext else "not set")
    expires = tenant.ms_secret_expires_at
    summary["microsoft"]["secret_expires_at"] = expires.isoformat() if expires else None
    if tenant.uses_provider_app:
        summary["microsoft"]["admin_consent"] = consent_status(tenant)
    return {"id": tenant.id, **summary, "tier": tier(tenant)}
