"""App-only tokens for Graph: one MSAL `ConfidentialClientApplication` per (tenant, app), with its token
cache, wrapped so that MSAL's result dicts and exceptions become our typed errors (graph-api.md section 6).

MSAL talks HTTP through `_MsalHttp`, an adapter over the connector's httpx client, so TLS verification
(the simulator's CA), timeouts and keep-alive are the same for login and Graph, and `REQUESTS_CA_BUNDLE`
cannot silently override the CA (section 6).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
from msal.exceptions import MsalServiceError

from connectors.egress import InternalAddressRefused
from connectors.graph._credentials import CertificateCredential, ClientCredential
from connectors.graph._errors import GraphAddressRefused, GraphAuthError, GraphUnavailable

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Hosts MSAL knows; for any other authority (the simulator) instance discovery would call the real
# login.microsoftonline.com, so it is switched off there (section 6).
MICROSOFT_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login-us.microsoftonline.com",
    }
)
_AADSTS = re.compile(r"AADSTS(\d+)")
#: MSAL hands out a cached token only while it has more than this left.
MSAL_EXPIRY_MARGIN_S = 300.0


class _MsalHttp:
    """The `http_client` MSAL expects (`get`/`post` returning objects with status_code/text/headers)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http
        self.requests_made = 0

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        self.requests_made += 1
        return self._http.get(url, params=params, headers=headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> httpx.Response:
        self.requests_made += 1
        if isinstance(data, dict):
            # MSAL hands the client assertion over as bytes; httpx would send str(b"...") ("b'eyJ...'"),
            # which Entra rejects as a malformed JWT (AADSTS50027). requests encodes bytes; so do we.
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self._http.post(url, params=params, data=data, headers=headers)

    def close(self) -> None:
        """MSAL may call this; the httpx client belongs to the GraphClient."""


class TokenSource:
    """Hands out Graph access tokens for one (customer tenant, app): one MSAL app, so one token cache, per
    customer tenant, whether the app authenticates with a secret or a certificate."""

    def __init__(
        self,
        directory_id: str,
        client_id: str,
        credential: ClientCredential,
        login_base_url: str,
        http: httpx.Client,
    ) -> None:
        self._login_base_url = login_base_url.rstrip("/")
        self._authority = f"{self._login_base_url}/{directory_id}"
        self._client_id = client_id
        self._credential = credential
        self._http = _MsalHttp(http)
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        # The last token and until when (monotonic) MSAL would hand out that same token from its cache.
        # Asking MSAL costs ~0.1 ms (a cache search, two uuid4 correlation ids): 9 % of a worker's CPU
        # when each small tenant's poll is one Graph request.
        self._token: str | None = None
        self._token_until = 0.0

    @property
    def login_requests(self) -> int:
        """HTTP requests sent to the login endpoint (discovery + token)."""
        return self._http.requests_made

    def _application(self) -> msal.ConfidentialClientApplication:
        # Built lazily: the constructor already fetches the tenant's OIDC metadata over the network.
        if self._app is None:
            host = (urlsplit(self._authority).hostname or "").lower()
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=(
                    self._credential.msal_credential()
                    if isinstance(self._credential, CertificateCredential)
                    else self._credential
                ),
                authority=self._authority,
                http_client=self._http,
                instance_discovery=None if host in MICROSOFT_LOGIN_HOSTS else False,
            )
        return self._app

    def token(self) -> str:
        """A valid access token (from MSAL's cache when it has >5 min left); raises GraphAuthError /
        GraphUnavailable."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._token_until:
                return self._token
            try:
                asked_at = time.monotonic()
                result = self._application().acquire_token_for_client(scopes=[GRAPH_SCOPE])
            except InternalAddressRefused as exc:
                raise GraphAddressRefused.for_url(self._login_base_url, str(exc)) from None
            except httpx.TransportError as exc:
                raise GraphUnavailable(f"login endpoint unreachable: {type(exc).__name__}") from exc
            except MsalServiceError as exc:
                raise GraphUnavailable(f"login endpoint failed: {exc.error}") from exc
            except ValueError as exc:
                raise _discovery_error(exc) from exc
            if "access_token" in result:
                self._remember(str(result["access_token"]), result, asked_at)
        if "access_token" in result:
            if result.get("token_source") == "identity_provider":
                logger.info("graph token acquired for app %s at %s", self._client_id, self._authority)
            return str(result["access_token"])
        raise GraphAuthError.from_token_error(
            str(result.get("error", "")),
            list(result.get("error_codes") or []),
            str(result.get("error_description", "")),
        )

    def _remember(self, token: str, result: dict[str, Any], asked_at: float) -> None:
        """Keeps the token for as long as MSAL would return it from its cache: until 5 minutes before it
        expires (MSAL's margin) or until MSAL wants to refresh it early (``refresh_in``), whichever is
        first; a token within the margin is not kept, so MSAL is asked again at once."""
        horizons = [float(result.get("expires_in") or 0) - MSAL_EXPIRY_MARGIN_S]
        if result.get("refresh_in"):
            horizons.append(float(result["refresh_in"]))
        keep_s = min(horizons)
        self._token, self._token_until = (token, asked_at + keep_s) if keep_s > 0 else (None, 0.0)

    def invalidate(self) -> None:
        """Forget cached tokens (Graph said 401 although MSAL thought the token was still valid)."""
        with self._lock:
            self._token, self._token_until = None, 0.0
            if self._app is not None:
                self._app.remove_tokens_for_client()


def _discovery_error(exc: ValueError) -> GraphAuthError:
    """MSAL raises ValueError when OIDC discovery fails with 4xx (e.g. AADSTS90002 unknown tenant)."""
    text = f"{exc} {exc.__context__ or ''}"
    match = _AADSTS.search(text)
    if match:
        return GraphAuthError.from_token_error("invalid_tenant", [int(match[1])], f"AADSTS{match[1]}")
    return GraphAuthError(
        None,
        "The login endpoint does not know this directory.",
        error="invalid_authority",
        fix="Check the directory id and the login URL.",
    )
