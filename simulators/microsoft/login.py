"""The Entra ID (login.microsoftonline.com) side: OIDC discovery and the client-credentials token endpoint.

Error bodies, codes and statuses follow graph-api.md sections 6 and 9 (S23) and docs/entra-consent.md.
Token checks run in this order: tenant, grant type, app/consent (service principal), client credential
(certificate assertion or secret, then its expiry), scope. The admin-consent endpoint is here too.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

from simulators.microsoft.assertion import AssertionRejected, verify_assertion
from simulators.microsoft.http import Req, Resp
from simulators.microsoft.state import App, Application, SimState, Tenant
from simulators.microsoft.tokens import GRAPH_AUDIENCE, TokenMinter

GRAPH_SCOPES = frozenset({f"{GRAPH_AUDIENCE}/.default", "00000003-0000-0000-c000-000000000000/.default"})
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access"})


def aadsts_error(status: int, error: str, code: int, text: str) -> Resp:
    """A token-endpoint error in the real shape (S23), trace/correlation ids included."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
    )
    return Resp.json(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def unknown_tenant(name: str) -> Resp:
    return aadsts_error(
        400,
        "invalid_tenant",
        90002,
        (
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may "
            "happen if there are no active subscriptions for the tenant."
        ),
    )


def openid_configuration(state: SimState, req: Req, tenant_name: str) -> Resp:
    tenant = state.directory.resolve_tenant(unquote(tenant_name))
    if tenant is None:
        return unknown_tenant(tenant_name)
    base = f"https://{req.headers.get('host', 'login.microsoftonline.com')}/{tenant.id}"
    return Resp.json(
        200,
        {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        },
    )


def instance_discovery(req: Req) -> Resp:
    """Only for a test that deliberately leaves MSAL's instance discovery on (section 9)."""
    host = req.headers.get("host", "")
    return Resp.json(
        200,
        {
            "tenant_discovery_endpoint": f"https://{host}/common/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        },
    )


def _credentials(req: Req, form: dict[str, str]) -> tuple[str, str]:
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    auth = req.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            client_id, secret = unquote(user), unquote(password)
        except ValueError:
            pass
    return client_id.lower(), secret


def _credential_kind(form: dict[str, str], secret: str) -> str:
    """For the request log: "secret", or "assertion:<alg>:<thumbprint header>" (never the values)."""
    if "client_assertion" not in form:
        return "secret" if secret else "none"
    try:
        header = json.loads(base64.urlsafe_b64decode(form["client_assertion"].split(".")[0] + "=="))
        thumbprint = next((h for h in ("x5t#S256", "x5t") if h in header), "none")
        return f"assertion:{header.get('alg')}:{thumbprint}"
    except (ValueError, AttributeError):
        return "assertion:malformed"


def token(state: SimState, minter: TokenMinter, req: Req, tenant_name: str) -> tuple[Resp, dict[str, Any]]:
    """Client-credentials grant; returns the response and log details (tenant, app) for the request log."""
    tenant = state.directory.resolve_tenant(unquote(tenant_name))
    form = req.form()
    client_id, secret = _credentials(req, form)
    details: dict[str, Any] = {"tenant": tenant.id if tenant else tenant_name, "app": client_id}
    details["credential"] = _credential_kind(form, secret)
    if tenant is None:
        return unknown_tenant(tenant_name), details
    host = req.headers.get("host", "login.microsoftonline.com").lower()
    audiences = {
        f"https://{host}/{name}/oauth2/v2.0/token" for name in (tenant.id, tenant.domain, tenant_name.lower())
    }
    resp = _token_for(state, minter, tenant, form, client_id, secret, audiences)
    # Entra's login answers set its own cookies (fpc, stsservicecookie, x-ms-gateway-slice) even for the
    # client-credentials grant, which needs none: a client that keeps and replays them must keep them to
    # the one customer tenant they came from.
    resp.headers["set-cookie"] = f"fpc={tenant.id}; path=/; secure; HttpOnly; SameSite=None"
    return resp, details


def _missing_service_principal(client_id: str, tenant: Tenant) -> Resp:
    """A multi-tenant app with no service principal in the tenant: admin consent never given (or
    refused), or the customer deleted the enterprise app (S23b, docs/entra-consent.md)."""
    return aadsts_error(
        401,
        "invalid_client",
        7000229,
        f"The client application {client_id} is missing service principal in the tenant {tenant.id}. "
        "See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
    )


def _authenticate(
    state: SimState,
    app: App,
    application: Application | None,
    form: dict[str, str],
    client_id: str,
    secret: str,
    audiences: set[str],
) -> Resp | None:
    """None when the client proved its identity with a certificate assertion or a secret."""
    if "client_assertion" in form or "client_assertion_type" in form:
        try:
            verify_assertion(state, application, client_id, form, audiences)
        except AssertionRejected as rejected:
            return aadsts_error(rejected.status, rejected.error, rejected.code, rejected.text)
        return None
    if not secret:
        return aadsts_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    secrets = application.secrets if application is not None else app.secrets
    matching = [s for s in secrets if hmac.compare_digest(s.value.encode(), secret.encode())]
    if not matching:
        return aadsts_error(
            401,
            "invalid_client",
            7000215,
            (
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )
    if all(s.expires_at <= state.clock.now() for s in matching):
        return aadsts_error(
            401,
            "invalid_client",
            7000222,
            (
                f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal "
                f"to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
                "certificate credentials for added security: https://aka.ms/certCreds."
            ),
        )
    return None


def _token_for(
    state: SimState,
    minter: TokenMinter,
    tenant: Tenant,
    form: dict[str, str],
    client_id: str,
    secret: str,
    audiences: set[str],
) -> Resp:
    grant = form.get("grant_type", "")
    if grant != "client_credentials":
        return aadsts_error(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
        )
    app = tenant.apps.get(client_id)
    application = state.directory.applications.get(client_id)
    if application is not None and (app is None or not app.consented):
        return _missing_service_principal(client_id, tenant)
    if app is None or not app.consented:
        return aadsts_error(
            400,
            "unauthorized_client",
            700016,
            (
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.domain}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant."
            ),
        )
    refused = _authenticate(state, app, application, form, client_id, secret, audiences)
    if refused is not None:
        return refused
    now = state.clock.now()
    scopes = [s for s in form.get("scope", "").split() if s not in _OIDC_SCOPES]
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        return aadsts_error(
            400,
            "invalid_scope",
            1002012,
            (
                f"The provided value for scope {form.get('scope', '')} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI)."
            ),
        )
    if scopes[0] not in GRAPH_SCOPES:
        return aadsts_error(
            400,
            "invalid_resource",
            500011,
            (
                f"The resource principal named {scopes[0][: -len('/.default')]} was not found in the tenant "
                f"named {tenant.domain}."
            ),
        )
    lifetime = state.settings.token_lifetime_s
    access = minter.mint(
        {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tenant.id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + lifetime,
            "tid": tenant.id,
            "appid": client_id,
            "idtyp": "app",
            "roles": list(app.roles),
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
        }
    )
    return Resp.json(
        200,
        {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access},
    )


def _error_page(code: int, text: str) -> Resp:
    """What the browser shows when Entra cannot redirect back: an error page, status 400."""
    body = f"<html><body><h1>Sign in</h1><p>AADSTS{code}: {html.escape(text)}</p></body></html>"
    return Resp(400, body.encode(), {"content-type": "text/html; charset=utf-8"})


def admin_consent(state: SimState, req: Req, tenant_name: str, v2: bool) -> tuple[Resp, dict[str, Any]]:
    """`GET /{tenant}/adminconsent` (v1) and `/{tenant}/v2.0/adminconsent` (v2, needs `scope`).

    The simulated administrator signs in at once and answers as the control API preset for this
    (application, tenant): approve (default) creates the service principal and redirects back with
    `admin_consent=True&tenant=<id>&state=...`; refuse redirects back with `error=consent_required` and
    an AADSTS65004 `error_description` (v2-admin-consent.md). When there is nowhere safe to redirect to
    (unknown tenant, app or redirect URI), an error page is shown instead, as Entra does."""
    query = req.query
    client_id = query.get("client_id", "").lower()
    details: dict[str, Any] = {"tenant": tenant_name, "app": client_id}
    tenant = state.directory.resolve_tenant(unquote(tenant_name))
    if tenant is None:
        return _error_page(90002, f"Tenant '{tenant_name}' not found."), details
    details["tenant"] = tenant.id
    for name in ("client_id", "redirect_uri") + (("scope",) if v2 else ()):
        if not query.get(name):
            return _error_page(
                900144, f"The request must contain the following parameter: '{name}'."
            ), details
    application = state.directory.applications.get(client_id)
    if application is None:
        return _error_page(
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant.domain}'.",
        ), details
    redirect_uri = query["redirect_uri"]
    if redirect_uri not in application.redirect_uris:
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
            f"configured for the application '{client_id}'. Make sure the redirect URI sent in the request "
            "matches one added to your application in the Azure portal.",
        ), details
    params: dict[str, str] = {"admin_consent": "True"}
    if application.decisions.get(tenant.id, "approve") == "approve":
        state.directory.set_consent(application, tenant, "grant")
        params["tenant"] = tenant.id
        if v2:
            params["scope"] = query["scope"]
    else:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        params["error"] = "consent_required"
        params["error_description"] = (
            "AADSTS65004: The resource owner or authorization server denied the request.\r\n"
            f"Trace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
        )
    if "state" in query:
        params["state"] = query["state"]
    location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)
    return Resp(302, b"", {"location": location}), details
