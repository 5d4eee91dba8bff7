"""`teamsconnect tenant consent-link NAME`: the admin-consent link for a tenant on the provider's app,
to send to the customer's Global Administrator (tenants/consent.py)."""

from __future__ import annotations

import typer

from cli.errors import fail_on_bad_settings
from cli.tenant import _Fail, _session, _tenant
from config import get_settings
from config.settings import ENV_PREFIX
from tenants.consent import consent_link

CALLBACK_PATH = "/onboarding/consent"


def consent_link_command(tenant_ref: str = typer.Argument(..., metavar="NAME|ID")) -> None:
    """Print the admin-consent link for the customer's Global Administrator (tenants on the provider app:
    microsoft.app=provider). The link is valid for 14 days; opening it and consenting is all they do."""
    with fail_on_bad_settings():
        settings = get_settings()
    with _session(with_box=True) as (session, box):
        tenant = _tenant(session, tenant_ref)
        if not tenant.uses_provider_app:
            raise _Fail(f"tenant {tenant.name} signs in with its own app (microsoft.app=own); switch it with "
                        f"`teamsconnect tenant set {tenant.name} microsoft.app=provider` first")
        if not settings.provider_client_id.strip():
            raise _Fail(f"no provider app is configured: set {ENV_PREFIX}PROVIDER_CLIENT_ID and its "
                        "certificate (README: Onboarding by admin consent)")
        assert box is not None
        redirect_uri = settings.public_url.rstrip("/") + CALLBACK_PATH
        url = consent_link(session, box, tenant, settings.provider_client_id.strip().lower(), redirect_uri)
    typer.echo(url)
    typer.echo(f"Send this link to the Global Administrator of {tenant.name}'s Microsoft 365 tenant. It "
               "grants the provider app Presence.ReadWrite.All and User.Read.All (application permissions).",
               err=True)
