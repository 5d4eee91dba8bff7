"""Admin consent for our multi-tenant app: the link a customer's Global Administrator opens, and reading
what Entra sends back to our redirect URI (learn.microsoft.com `entra/identity-platform/v2-admin-consent`;
docs/entra-consent.md). Pure functions, no I/O. Signing and checking `state` is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from connectors.graph._auth import GRAPH_SCOPE
from connectors.graph._errors import GraphAuthError

_NOT_A_TENANT = frozenset({"common", "consumers"})  # personal accounts cannot give admin consent


def admin_consent_url(
    tenant: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    *,
    login_base_url: str = "https://login.microsoftonline.com",
    scope: str = GRAPH_SCOPE,
) -> str:
    """The v2.0 admin-consent link: `{login}/{tenant}/v2.0/adminconsent?client_id&scope&redirect_uri&state`.

    `tenant` is the customer's tenant id or verified domain (or "organizations" when unknown yet);
    `scope` must be `<resource>/.default`, the only form that requests application permissions;
    `redirect_uri` must be registered on the app exactly as given (https, or http only for localhost)."""
    tenant = tenant.strip()
    if not tenant or "/" in tenant or tenant.lower() in _NOT_A_TENANT:
        raise ValueError("tenant must be the customer's tenant id, a verified domain or 'organizations'")
    if not client_id.strip():
        raise ValueError("client_id is required")
    parts = urlsplit(redirect_uri)
    local = parts.hostname in ("localhost", "127.0.0.1")
    if (
        parts.scheme != "https"
        and not (parts.scheme == "http" and local)
        or not parts.netloc
        or parts.fragment
    ):
        raise ValueError("redirect_uri must be an absolute https URL without a fragment")
    if not scope.endswith("/.default"):
        raise ValueError("scope must end with /.default to request application permissions")
    if not state:
        raise ValueError("state is required: it carries the signed onboarding context")
    query = urlencode(
        {"client_id": client_id, "scope": scope, "redirect_uri": redirect_uri, "state": state},
        quote_via=quote,
    )
    return f"{login_base_url.rstrip('/')}/{quote(tenant, safe='')}/v2.0/adminconsent?{query}"


@dataclass(frozen=True, slots=True)
class AdminConsentResult:
    """Entra's answer at our redirect URI. `tenant` is the consenting tenant's id; it proves nothing on
    its own (the docs warn it can be forged): trust it only together with a verified `state`."""

    tenant: str
    state: str


def parse_admin_consent_redirect(query: Mapping[str, str]) -> AdminConsentResult:
    """Read the redirect's query parameters; raises GraphAuthError when consent was not given."""
    error = query.get("error")
    if error or query.get("admin_consent", "").lower() != "true" or not query.get("tenant"):
        description = query.get("error_description", "")
        code = _aadsts(description)
        # Without an AADSTS code the administrator still did not consent: explain it as a refusal (65004).
        raise GraphAuthError.from_token_error(error or "consent_not_given", [code or 65004], description)
    return AdminConsentResult(tenant=query["tenant"].lower(), state=query.get("state", ""))


def _aadsts(text: str) -> int | None:
    if text.startswith("AADSTS"):
        digits = text[6:].split(":", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None
