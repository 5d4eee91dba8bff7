"""Onboarding by admin consent: the link a customer's Global Administrator opens for the provider's
multi-tenant app, and what Microsoft's answer at our redirect URI means for the tenant.

The link's `state` is the tenant's id sealed with the deployment's encryption key (Fernet: encrypted,
authenticated, time-stamped), so the answer can only be taken for the tenant the link was made for, and
only within `STATE_TTL_S`. The `tenant` parameter Microsoft sends back is trusted only together with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from connectors.graph import GraphAuthError, admin_consent_url, parse_admin_consent_redirect
from models import Tenant, TenantConsent
from models.base import utcnow
from models.crypto import SecretBox, SecretBoxError

#: AADSTS codes of a token request that mean the customer's consent to the provider app is missing or was
#: withdrawn (the enterprise application was deleted): docs/entra-consent.md.
CONSENT_MISSING_CODES = frozenset({7000229, 65001})
#: How long a consent link stays valid: long enough to be mailed to the customer's administrator.
STATE_TTL_S = 14 * 24 * 3600
_PURPOSE = "admin-consent"


class ConsentLinkInvalid(ValueError):
    """The answer's `state` is not one of our links, was made with a removed key, or has expired."""


@dataclass(frozen=True)
class ConsentAnswer:
    """What the customer's administrator answered, for the tenant the link was made for."""

    tenant: Tenant
    granted: bool
    error_code: str | None
    message: str  # the explanation and the fix (for a refusal), or what happens next


def _seal(box: SecretBox, tenant: Tenant) -> str:
    return box.encrypt(json.dumps({"purpose": _PURPOSE, "tenant_id": tenant.id}))


def _unseal(box: SecretBox, state: str) -> int:
    try:
        data = json.loads(box.decrypt(state, ttl_s=STATE_TTL_S))
    except (SecretBoxError, ValueError, UnicodeError):
        raise ConsentLinkInvalid(
            "this consent answer does not belong to a link of ours, or the link is older than 14 days: "
            "create a new one (`teamsconnect tenant consent-link NAME`) and send it to the customer's "
            "Global Administrator"
        ) from None
    tenant_id = data.get("tenant_id") if isinstance(data, dict) else None
    if data.get("purpose") != _PURPOSE or not isinstance(tenant_id, int):
        raise ConsentLinkInvalid("this consent answer does not belong to a link of ours")
    return tenant_id


def _consent_row(tenant: Tenant) -> TenantConsent:
    if tenant.consent is None:
        tenant.consent = TenantConsent(status="pending")
    return tenant.consent


def consent_link(session: Session, box: SecretBox, tenant: Tenant, client_id: str, redirect_uri: str) -> str:
    """The admin-consent link for the tenant's directory; records that a link was made (status pending
    unless consent was already given)."""
    url = admin_consent_url(tenant.ms_directory_id, client_id, redirect_uri, _seal(box, tenant),
                            login_base_url=tenant.login_base_url)
    row = _consent_row(tenant)
    row.link_created_at = utcnow()
    session.flush()
    return url


def record_answer(session: Session, box: SecretBox, query: Mapping[str, str],
                  now: datetime | None = None) -> ConsentAnswer:
    """Takes Microsoft's redirect (query parameters) for the tenant named in the sealed state and records
    it; raises ConsentLinkInvalid for a state that is not ours (nothing is recorded then)."""
    tenant = session.get(Tenant, _unseal(box, query.get("state", "")))
    if tenant is None:
        raise ConsentLinkInvalid("the tenant this consent link was made for no longer exists")
    row = _consent_row(tenant)
    row.answered_at = now or utcnow()
    try:
        result = parse_admin_consent_redirect(query)
    except GraphAuthError as refused:
        row.status = "refused"
        row.error_code = f"AADSTS{refused.aadsts_code}" if refused.aadsts_code else "consent_not_given"
        row.error_description = refused.message
        session.flush()
        return ConsentAnswer(tenant, False, row.error_code, refused.message)
    row.status, row.error_code, row.error_description = "granted", None, None
    row.directory_id = result.tenant
    session.flush()
    return ConsentAnswer(tenant, True, None, "admin consent given; the connection test runs now")


def record_revoked(session: Session, tenant_id: int, code: str, message: str) -> None:
    """A token request said the consent is gone (the customer removed the app): shown until given again.
    Takes the id: the poll's tenants are kept outside any session (sync/tenant_policies.py)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:  # deleted meanwhile: nothing to show the revocation on
        return
    row = _consent_row(tenant)
    row.status, row.error_code, row.error_description = "revoked", code, message
    session.flush()
