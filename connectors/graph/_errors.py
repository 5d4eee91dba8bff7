"""Errors of the Graph connector. Nothing from httpx or MSAL leaves the connector; `_client` and `_auth`
translate at one seam each.

    GraphError                    base; `.permanent` says whether retrying can help
    ├── GraphAuthError            token request refused (AADSTS code) or Graph said 401/403; permanent
    ├── GraphCredentialError      the credential we were given is unusable (key does not fit certificate)
    ├── GraphThrottled            429; `.retry_after` seconds (float) to wait; transient
    ├── GraphUnavailable          5xx, timeout, connection failure; transient
    ├── GraphAddressRefused       a custom login/Graph host resolves to an internal address; permanent
    ├── GraphBadRequest           any other 4xx (bad id list, unsupported query); permanent
    │   └── GraphNotFound         404 for a user / group that does not exist (or is in another tenant)

Messages never contain secrets or tokens: they are built only from codes, ids and Microsoft's texts.
"""

from __future__ import annotations


class GraphError(Exception):
    """Base of every Graph connector error."""

    permanent: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GraphThrottled(GraphError):
    """Raised on 429, and by the client itself while a previous Retry-After has not elapsed."""

    permanent = False

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"Microsoft Graph is throttling this app; retry in {retry_after:.3f} s")
        self.retry_after = retry_after


class GraphUnavailable(GraphError):
    """Raised on 5xx, timeouts and network errors; `retry_after` is set when Graph sent one."""

    permanent = False

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GraphAddressRefused(GraphError):
    """Raised before anything is sent when a tenant's custom login or Graph host resolves to an address of
    the service's own network (connectors/egress.py)."""

    @classmethod
    def for_url(cls, base_url: str, why: str) -> GraphAddressRefused:
        return cls(f"Microsoft at {base_url}: {why}; the service connects only to public addresses. Leave "
                   "the tenant's login and Graph addresses at Microsoft's (the default), or, for a test "
                   "system in a private network, have the operator set TEAMSCONNECT_ALLOW_PRIVATE_URLS=true")


class GraphBadRequest(GraphError):
    """Raised when Graph rejects a request as malformed or unsupported (4xx other than 401/403/404/429)."""

    def __init__(self, message: str, status: int = 400, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GraphNotFound(GraphBadRequest):
    """Raised on 404: the user or group does not exist in this tenant."""


class GraphCredentialError(GraphError):
    """Raised before any request when a configured credential cannot work (bad PEM, key and certificate
    that do not belong together). Names the certificate, never the key."""

    def __init__(self, explanation: str, fix: str) -> None:
        super().__init__(f"{explanation} Fix: {fix}")
        self.explanation = explanation
        self.fix = fix


# What to tell the customer whenever our multi-tenant app lacks consent in their tenant.
CONSENT_FIX = (
    "Ask the customer's Global Administrator to open the admin-consent link (onboarding wizard) and accept "
    "the requested permissions; then test the connection again."
)
CERTIFICATE_FIX = (
    "Upload the service's current certificate (public part) to the app registration under Certificates & "
    "secrets > Certificates, or configure the certificate whose thumbprint is registered there."
)

# AADSTS code -> (what went wrong, how to fix it). Texts are shown to customers (tenant health, CLI).
# Sources and what is inferred: docs/entra-consent.md.
AADSTS_HELP: dict[int, tuple[str, str]] = {
    7000215: (
        "The client secret is wrong.",
        "Copy the secret's *Value* (not its Secret ID) from Entra admin center > App registrations > "
        "Certificates & secrets and enter it again.",
    ),
    7000222: (
        "The client secret has expired.",
        "Create a new client secret under App registrations > Certificates & secrets and enter it here.",
    ),
    700016: (
        "The app is not known in this directory: it has not been consented to by an administrator of the "
        "tenant, or the client id / directory id is wrong.",
        "Check the client id and the directory id; if they are right, ask the customer's Global "
        "Administrator to grant admin consent for the app (for our multi-tenant app: open the admin-consent "
        "link).",
    ),
    7000229: (
        "Our app has not been given admin consent in this tenant (it has no service principal there: consent "
        "was never given, was refused, or the enterprise app was deleted).",
        CONSENT_FIX,
    ),
    65001: ("Admin consent for the app is missing in this tenant.", CONSENT_FIX),
    65004: ("The administrator declined the admin consent for the app.", CONSENT_FIX),
    700027: (
        "Entra does not accept the certificate the service signs with: it is not registered on the app, has "
        "expired, or the signature does not match it.",
        CERTIFICATE_FIX,
    ),
    700024: (
        "The signed client assertion is outside its valid time range (expired or not yet valid).",
        "Check that the server's clock is synchronised (NTP); the service creates a new assertion on retry.",
    ),
    50012: (
        "The client assertion is addressed to a different token endpoint (audience).",
        "This is a configuration error of the service: the login URL and the directory id must match.",
    ),
    5002741: (
        "The client assertion names more than one audience.",
        "This is a configuration error of the service: the assertion may name the token endpoint only.",
    ),
    50027: (
        "Entra could not read the client assertion (format, thumbprint header, issuer or claims).",
        "This is a configuration error of the service: check the certificate credential configuration.",
    ),
    50048: (
        "The client assertion's subject does not match its issuer.",
        "This is a configuration error of the service: both must be the app's client id.",
    ),
    50013: (
        "Entra refused the client assertion as invalid (for example, one that was already used).",
        "Retry: the service signs a new assertion; if it persists, check the certificate configuration.",
    ),
    7000218: (
        "The token request carried neither a client secret nor a certificate assertion.",
        "Configure a client secret or a certificate for the app.",
    ),
    90002: (
        "The directory (tenant) does not exist.",
        "Check the directory id: Entra admin center > Overview > Tenant ID (or the tenant's domain).",
    ),
    50076: (
        "A Conditional Access policy asks for multi-factor authentication, which the service (an app "
        "signing in with its own credentials, a workload identity) cannot perform.",
        "In the Microsoft Entra admin center > Protection > Conditional Access > Policies, open the policy "
        "that requires MFA, and under Assignments > Users or workload identities > What does this policy "
        "apply to? > Workload identities > Exclude > Select service principals, exclude this app (Workload "
        "Identities Premium is needed to edit such policies). Or add the service's egress IP addresses as "
        "a trusted location (Protection > Conditional Access > Named locations > + IP ranges location > "
        "Mark as trusted location) and exclude that location from the policy. Unlike the STARFACE module, "
        "the hosted service does not sign in from your PBX's address, so the module's 'trusted IPs' "
        "setting for the PBX does not apply.",
    ),
    53003: (
        "A Conditional Access policy blocks the app's sign-in.",
        "Ask the tenant administrator to allow the app's service principal in Conditional Access.",
    ),
    1002012: (
        "The requested scope is invalid.",
        "This is a configuration error of the service: the scope must be "
        "https://graph.microsoft.com/.default.",
    ),
    70011: (
        "The requested scope is invalid.",
        "This is a configuration error of the service: the scope must be https://graph.microsoft.com/.default.",
    ),
    500011: (
        "Microsoft Graph is not available in this tenant for the app.",
        "Check that the tenant is a Microsoft 365 tenant in the global cloud.",
    ),
    70003: (
        "The login endpoint refused the grant type.",
        "This is a configuration error of the service: only client credentials are supported.",
    ),
}
MISSING_PERMISSION_HELP = (
    "Grant the application permissions Presence.ReadWrite.All and User.Read.All to the app "
    "(API permissions > Microsoft Graph > Application permissions) and click 'Grant admin consent'; "
    "then wait a few minutes."
)


class GraphAuthError(GraphError):
    """Raised when Entra refuses a token (AADSTS code) or Graph refuses the token (401) / permission (403)."""

    def __init__(
        self, aadsts_code: int | None, explanation: str, *, error: str = "", fix: str = "", detail: str = ""
    ) -> None:
        text = explanation if not fix else f"{explanation} Fix: {fix}"
        if aadsts_code is not None:
            text = f"AADSTS{aadsts_code}: {text}"
        super().__init__(text if not detail else f"{text} ({detail})")
        self.aadsts_code = aadsts_code
        self.explanation = explanation
        self.fix = fix
        self.error = error

    @classmethod
    def from_token_error(cls, error: str, codes: list[int], description: str) -> GraphAuthError:
        """Build from a token-endpoint error body (`error`, `error_codes`, `error_description`)."""
        code = codes[0] if codes else None
        if code is None and error == "invalid_scope":
            code = 1002012
        explanation, fix = AADSTS_HELP.get(code or -1, ("Microsoft refused the sign-in.", ""))
        first_line = description.splitlines()[0] if description else error
        return cls(code, explanation, error=error, fix=fix, detail=first_line)

    @classmethod
    def missing_permission(cls, detail: str) -> GraphAuthError:
        return cls(
            None,
            "The app lacks a Microsoft Graph application permission.",
            error="Forbidden",
            fix=MISSING_PERMISSION_HELP,
            detail=detail,
        )
