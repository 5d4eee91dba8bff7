"""Errors of the Graph connector. Nothing from httpx or MSAL leaves the connector; `_client` and `_auth`
translate at one seam each.

    GraphError                    base; `.permanent` says whether retrying can help
    ├── GraphAuthError            token request refused (AADSTS code) or Graph said 401/403; permanent
    ├── GraphThrottled            429; `.retry_after` seconds (float) to wait; transient
    ├── GraphUnavailable          5xx, timeout, connection failure; transient
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


class GraphBadRequest(GraphError):
    """Raised when Graph rejects a request as malformed or unsupported (4xx other than 401/403/404/429)."""

    def __init__(self, message: str, status: int = 400, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GraphNotFound(GraphBadRequest):
    """Raised on 404: the user or group does not exist in this tenant."""


# AADSTS code -> (what went wrong, how to fix it). Texts are shown to customers (tenant health, CLI).
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
        "Have a Global Administrator of the customer tenant grant admin consent for the app, and check "
        "the client id and directory id.",
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
