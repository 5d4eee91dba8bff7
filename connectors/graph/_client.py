"""`GraphClient`: the Microsoft Graph calls the service makes, for one customer tenant and our app.

Long-lived: one httpx client (keep-alive) and one MSAL app (token cache) per instance; the worker
runtime (sync/runtime.py) keeps one instance per tenant per process. Every HTTP exchange goes through
`_send`, the single seam where httpx exceptions and error statuses become `GraphError`s and where
Retry-After is enforced: after a 429 the client sends nothing until the wait is over (design.md, Graph
budget).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from connectors import egress
from connectors.graph._auth import TokenSource
from connectors.graph._credentials import ClientCredential
from connectors.graph._errors import (
    GraphAddressRefused,
    GraphAuthError,
    GraphBadRequest,
    GraphNotFound,
    GraphThrottled,
    GraphUnavailable,
)
from connectors.graph._models import DirectoryUser, Presence
from connectors.tls import tls_context
from connectors.trace import trace_exchange

logger = logging.getLogger(__name__)

MAX_PRESENCE_IDS = 650  # per getPresencesByUserId call (S1)
MAX_BATCH = 20  # requests per $batch (S18)
SESSION_PAIRS = frozenset(
    {
        ("Available", "Available"),
        ("Busy", "InACall"),
        ("Busy", "InAConferenceCall"),
        ("Away", "Away"),
        ("DoNotDisturb", "Presenting"),
    }
)  # setPresence accepts only these (S5)
MIN_SESSION, MAX_SESSION = timedelta(minutes=5), timedelta(hours=4)
DEFAULT_RETRY_AFTER = 5.0  # no Retry-After header: wait like MSAL does for a CCA
USER_SELECT = "id,displayName,mail,userPrincipalName,proxyAddresses"
_MAIL_CHUNK, _PROXY_CHUNK = 7, 15  # 2 x 7 and 15 clauses stay within Graph's 15-clause filter limit
_INLINE_WAIT_ROUNDS = 3
_ACCEPT_JSON = {"Accept": "application/json"}  # on login (the client's default) and Graph requests


def _iso_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        "PT"
        + (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{secs}S" if secs else "")
    )


def _presences_of(call: str, body: bytes) -> list[Presence]:
    """The presences of a getPresencesByUserId answer. Parsed with orjson: 13 us for 25 users against
    28-35 with the standard library. A body that is not Graph's (a proxy's page, a cut answer) is
    GraphUnavailable, naming what came back."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GraphUnavailable(f"Graph answered {call} with a body that is not JSON") from None
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise GraphUnavailable(f"Graph answered {call} without a list of presences")
    return [Presence.from_graph(item) for item in items]


def _unique_ids(user_ids: Iterable[str]) -> list[str]:
    """Entra object ids once each, lower-cased (Graph answers them so), in their order."""
    return list(dict.fromkeys(i.lower() for i in user_ids))


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _retry_after(headers: httpx.Headers | dict[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return max(0.0, float(lowered["retry-after"]))
    except (KeyError, ValueError):
        return None


def _error_text(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", response.reason_phrase


@dataclass(frozen=True)
class GraphHttp:
    """The HTTP of Graph and its login, for one GraphClient or shared by many: ``client`` for the login
    requests (MSAL wants an object with ``get``/``post``) and ``transport``, that client's own connection
    pool, through which Graph requests are sent without the client's per-request work - cookies, the
    auth and redirect flows, event hooks, none of which a Graph call uses. That work was a sixth of the
    CPU of a small tenant's poll (one Graph request each): 0.5 ms of 2.9 (bench/scale.py, AMD EPYC)."""

    client: httpx.Client
    transport: httpx.BaseTransport

    @property
    def timeout(self) -> dict[str, float | None]:
        """The client's timeouts, as a request's ``timeout`` extension (what httpx.Client would set)."""
        return self.client.timeout.as_dict()

    def close(self) -> None:
        self.client.close()  # closes the transport (its pool) with it


def shared_graph_http(verify: str | bool = True, timeout: float = 10.0) -> GraphHttp:
    """One HTTP pool for the Graph and login requests of all tenants of a process: one pool of keep-alive
    connections per host (a worker polling 2,000 small tenants held 2,000 connections to Graph, one per
    tenant). It keeps no cookies: Entra's login sets some, and one customer's must never travel with
    another's requests (the client-credentials grant needs none)."""
    return _new_http(verify, timeout, None, shared=True)


def _new_http(verify: str | bool, timeout: float, transport: httpx.BaseTransport | None,
              shared: bool) -> GraphHttp:
    tls = tls_context(verify)  # one per process and CA bundle, shared by all tenants' clients
    # Shared: room for a packed poll's concurrent reads (sync/poll.py) and the login requests beside them.
    limits = (httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=60) if shared
              else httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60))
    # A tenant may name its own login and Graph hosts (test systems): guarded like a PBX's.
    transport = (transport or egress.transport_for(tls, limits)
                 or httpx.HTTPTransport(verify=tls, limits=limits))
    client = httpx.Client(
        # Graph and its login are reached directly, never through a proxy named in the environment (the
        # transport is always our own, and the egress guard checks the address it connects to); nor does
        # the environment's .netrc or CA bundle take part.
        trust_env=False,
        verify=tls,
        timeout=timeout,
        headers=_ACCEPT_JSON,
        limits=limits,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])) if shared else None,
        transport=transport,
    )
    return GraphHttp(client, transport)


@dataclass(frozen=True)
class PresenceRequest:
    """One getPresencesByUserId request, ready to send: the URL, the JSON body, the headers (with the
    tenant's bearer token: never logged) and the ids asked for."""

    url: str
    body: bytes
    headers: dict[str, str]
    ids: list[str]

    @property
    def call(self) -> str:
        """What the trace log and errors name: the method and the path, no query."""
        return f"POST {self.url.split('?')[0]}"


class GraphClient:
    """Graph for one (directory, app). Not thread-safe for concurrent calls beyond MSAL's own lock."""

    def __init__(
        self,
        directory_id: str,
        client_id: str,
        credential: ClientCredential,
        *,
        login_base_url: str = "https://login.microsoftonline.com",
        graph_base_url: str = "https://graph.microsoft.com",
        verify: str | bool = True,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_inline_wait: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        http: GraphHttp | None = None,
    ) -> None:
        """``http``: HTTP shared with other tenants' GraphClients (``shared_graph_http``), which this one
        then never closes; without it the GraphClient has a connection pool of its own."""
        self.directory_id = directory_id
        self.client_id = client_id.lower()
        self._graph_base_url = graph_base_url.rstrip("/")
        self._graph = self._graph_base_url + "/v1.0"
        # Parsed once: httpx parses a str URL per request (33 us; a small tenant's read costs ~1 ms).
        self._presences_url = httpx.URL(f"{self._graph}/communications/getPresencesByUserId")
        self._owns_http = http is None
        self._http = http if http is not None else _new_http(verify, timeout, transport, shared=False)
        # `credential`: the client secret of the customer's own app registration, or the certificate of
        # the provider's multi-tenant app (CertificateCredential).
        self._tokens = TokenSource(directory_id, client_id, credential, login_base_url, self._http.client)
        self._clock, self._sleep, self._max_inline_wait = clock, sleep, max_inline_wait
        self._blocked_until = 0.0
        self.requests_made = 0  # Graph HTTP requests sent (login requests not included)

    def __repr__(self) -> str:
        return f"GraphClient(directory_id={self.directory_id!r}, client_id={self.client_id!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    @property
    def graph_base_url(self) -> str:
        return self._graph_base_url

    @property
    def login_requests(self) -> int:
        return self._tokens.login_requests

    @property
    def throttled_for(self) -> float:
        """Seconds until the client will send again (0 when not throttled)."""
        return max(0.0, self._blocked_until - self._clock())

    # --- the seam -------------------------------------------------------------------------------------
    def _send(self, method: str, url: str | httpx.URL, body: Any = None,
              accept: tuple[int, ...] = (), fresh_token_on_401: bool = True) -> httpx.Response:
        """Send one Graph request; 2xx comes back, everything else is raised as a GraphError. A 401 gets
        one more try with a fresh token (``fresh_token_on_401=False``: that try is this one)."""
        for attempt in ((1, 2) if fresh_token_on_401 else (2,)):
            headers = self._signed_headers()
            call = f"{method} {str(url).split('?')[0]}"  # logged and raised without the query string
            try:
                self.requests_made += 1
                started = time.perf_counter()
                response = self._exchange(httpx.Request(method, url, json=body, headers=headers,
                                                        extensions={"timeout": self._http.timeout}))
            except egress.InternalAddressRefused as exc:
                raise GraphAddressRefused.for_url(self._graph_base_url, str(exc)) from None
            except httpx.TimeoutException as exc:
                raise GraphUnavailable(f"Graph timed out: {call}") from exc
            except httpx.TransportError as exc:
                raise GraphUnavailable(f"Graph unreachable: {type(exc).__name__}") from exc
            logger.debug("graph %s -> %s", call, response.status_code)
            trace_exchange(logger, "graph", call, response.status_code, started,
                           len(response.request.content), len(response.content))
            if response.status_code == 401 and attempt == 1:
                self._tokens.invalidate()  # expired or revoked before MSAL expected: one fresh token, once
                continue
            if response.status_code not in accept:
                self._raise_for_status(response.status_code, response.headers, response)
            return response
        raise AssertionError("unreachable")

    def _signed_headers(self) -> dict[str, str]:
        """The headers of a Graph request with the tenant's token; refused during a Retry-After block."""
        if (wait := self.throttled_for) > 0:
            raise GraphThrottled(wait)
        return {**_ACCEPT_JSON, "Authorization": f"Bearer {self._tokens.token()}"}

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` over the pool and reads the whole answer; the connection goes back to the
        pool once the body is read, or is closed if reading fails (as httpx.Client.send does)."""
        response = self._http.transport.handle_request(request)
        response.request = request
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return response

    def _raise_for_status(
        self,
        status: int,
        headers: httpx.Headers | dict[str, str],
        response: httpx.Response | None = None,
        body: Any = None,
    ) -> None:
        if status < 400:
            return
        if response is not None:
            code, message = _error_text(response)
        else:
            error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            code, message = str(error.get("code", "")), str(error.get("message", ""))
        retry_after = _retry_after(headers)
        if status == 429:
            wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
            self._blocked_until = max(self._blocked_until, self._clock() + wait)
            raise GraphThrottled(wait)
        if status == 501:
            # Not Implemented: e.g. a property Graph cannot $select on a collection. Retrying cannot help.
            raise GraphBadRequest(
                f"Graph does not support this request (501 {code}): {message}", status, code
            )
        if status >= 500:
            if retry_after is not None:
                self._blocked_until = max(self._blocked_until, self._clock() + retry_after)
            raise GraphUnavailable(f"Graph answered {status} {code}".strip(), retry_after)
        if status == 401:
            raise GraphAuthError(
                None,
                "Graph rejected the app's access token.",
                error=code,
                fix="Check that the app registration and its consent still exist.",
                detail=message,
            )
        if status == 403:
            raise GraphAuthError.missing_permission(message)
        if status == 404:
            raise GraphNotFound(f"Graph: not found ({code}): {message}", status, code)
        raise GraphBadRequest(f"Graph rejected the request ({status} {code}): {message}", status, code)

    # --- presence ---------------------------------------------------------------------------------------
    def get_presences(self, user_ids: Iterable[str]) -> list[Presence]:
        """Presence of many users: one POST getPresencesByUserId per 650 ids. Ids Graph does not
        return (unknown, other tenant) are simply absent from the result."""
        ids = _unique_ids(user_ids)
        result: list[Presence] = []
        for start in range(0, len(ids), MAX_PRESENCE_IDS):
            chunk = ids[start : start + MAX_PRESENCE_IDS]
            answer = self._send("POST", self._presences_url, {"ids": chunk})
            result.extend(_presences_of(f"POST {self._presences_url}", answer.content))  # as _send names it
        return result

    def presence_request(self, user_ids: Iterable[str]) -> PresenceRequest:
        """The getPresencesByUserId request for these users (at most 650) as another sender sends it
        (connectors/graph/_reads.py: many tenants' reads in flight together): refused during a Retry-After
        block and signed with the tenant's token, as `_send` does."""
        ids = _unique_ids(user_ids)
        if len(ids) > MAX_PRESENCE_IDS:
            raise ValueError(f"one getPresencesByUserId request takes at most {MAX_PRESENCE_IDS} ids")
        headers = {**self._signed_headers(), "Content-Type": "application/json"}
        return PresenceRequest(str(self._presences_url), json.dumps({"ids": ids}).encode(), headers, ids)

    def presences_answered(self, request: PresenceRequest, status: int, headers: dict[str, str], body: bytes,
                           started: float) -> list[Presence]:
        """The presences of an answer to ``presence_request``, judged as `_send` judges its own: an error
        status raised as a GraphError (a 429 blocks the client), a 401 tried again here with a fresh token,
        once."""
        self.requests_made += 1
        trace_exchange(logger, "graph", request.call, status, started, len(request.body), len(body))
        if status == 401:
            self._tokens.invalidate()  # expired or revoked before MSAL expected
            answer = self._send("POST", self._presences_url, {"ids": request.ids}, fresh_token_on_401=False)
            return _presences_of(request.call, answer.content)
        if 300 <= status < 400:  # not followed (as httpx does not): Graph answers this call itself
            raise GraphUnavailable(f"Graph answered {status} to {request.call}")
        if status >= 400:
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = None
            self._raise_for_status(status, headers, body=payload)
        return _presences_of(request.call, body)

    def get_presence(self, user_id: str) -> Presence:
        return Presence.from_graph(self._send("GET", f"{self._graph}/users/{quote(user_id)}/presence").json())

    def set_presence(self, user_id: str, availability: str, activity: str, expiration: timedelta) -> None:
        """Create or refresh (keep alive) our app's presence session for the user; sessionId = client id.
        An Available session fades after 5 min without refresh, so re-send before that (S5)."""
        if (availability, activity) not in SESSION_PAIRS:
            raise ValueError(f"setPresence does not accept {availability}/{activity}")
        if not MIN_SESSION <= expiration <= MAX_SESSION:
            raise ValueError("setPresence expiration must be between 5 minutes and 4 hours")
        self._send(
            "POST",
            f"{self._graph}/users/{quote(user_id)}/presence/setPresence",
            {
                "sessionId": self.client_id,
                "availability": availability,
                "activity": activity,
                "expirationDuration": _iso_duration(expiration),
            },
        )

    keep_alive = set_presence

    def clear_presence(self, user_id: str) -> bool:
        """End our session; True if one existed. A 404 (no session, e.g. expired) counts as success (S7)."""
        try:
            self._send(
                "POST",
                f"{self._graph}/users/{quote(user_id)}/presence/clearPresence",
                {"sessionId": self.client_id},
            )
        except GraphNotFound:
            return False
        return True

    # --- directory --------------------------------------------------------------------------------------
    def check_access(self) -> list[str]:
        """Tenant test: get a token and make one cheap Graph call. Returns the app roles in the token;
        raises GraphAuthError naming what is missing."""
        self._send("GET", f"{self._graph}/users?$top=1&$select=id")
        roles = _token_roles(self._tokens.token())  # served from MSAL's cache: no second token request
        missing = [
            r for r in ("Presence.ReadWrite.All", "User.Read.All") if roles is not None and r not in roles
        ]
        if missing:
            raise GraphAuthError.missing_permission(f"missing: {', '.join(missing)}")
        return list(roles or [])

    def client_secret_expiry(self, secret_hint: str) -> datetime | None:
        """When our client secret expires, read from the app registration: the `endDateTime` of the
        password credential whose `hint` (its first three characters) matches. Needs the application
        permission Application.Read.All (optional for customers): without it GraphAuthError (403).
        None when no credential matches the hint."""
        url = f"{self._graph}/applications(appId='{quote(self.client_id)}')?$select=passwordCredentials"
        credentials = self._send("GET", url).json().get("passwordCredentials") or []
        ends = [
            datetime.fromisoformat(str(item["endDateTime"]).replace("Z", "+00:00"))
            for item in credentials
            if isinstance(item, dict) and item.get("hint") == secret_hint[:3] and item.get("endDateTime")
        ]
        return max(ends) if ends else None

    def group_members(self, group_id: str, page_size: int = 999) -> list[DirectoryUser]:
        """Direct members of a group that are users (nested groups, devices, contacts are skipped);
        every `@odata.nextLink` page is followed."""
        items = self._get_all(
            f"{self._graph}/groups/{quote(group_id)}/members?$select={USER_SELECT}&$top={page_size}"
        )
        return [
            DirectoryUser.from_graph(i)
            for i in items
            if i.get("@odata.type", "#microsoft.graph.user") == "#microsoft.graph.user"
        ]

    def _get_all(self, url: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            page = self._send("GET", next_url).json()
            items.extend(page.get("value", []))
            next_url = page.get("@odata.nextLink")
        return items

    def find_users_by_email(self, emails: Iterable[str]) -> dict[str, list[DirectoryUser]]:
        """Resolve e-mail addresses to directory users, case-insensitively: by `mail`, else by
        `userPrincipalName`, else by `proxyAddresses` (design.md). Every requested address is a key;
        an empty list means no match, more than one user means ambiguous (report, never guess)."""
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        result: dict[str, list[DirectoryUser]] = {e: [] for e in wanted}
        by_upn: dict[str, list[DirectoryUser]] = {e: [] for e in wanted}
        urls = []
        for start in range(0, len(wanted), _MAIL_CHUNK):
            values = ",".join(_odata_string(e) for e in wanted[start : start + _MAIL_CHUNK])
            urls.append(self._users_url(f"mail in ({values}) or userPrincipalName in ({values})"))
        for user in self._batch_users(urls):
            if user.mail and user.mail.lower() in result:
                _add(result[user.mail.lower()], user)
            if user.user_principal_name.lower() in by_upn:
                _add(by_upn[user.user_principal_name.lower()], user)
        for email, users in by_upn.items():
            if not result[email]:
                result[email] = users
        rest = [e for e in wanted if not result[e]]
        urls = [
            self._users_url(
                " or ".join(
                    f"proxyAddresses/any(p:p eq {_odata_string('smtp:' + e)})"
                    for e in rest[start : start + _PROXY_CHUNK]
                )
            )
            for start in range(0, len(rest), _PROXY_CHUNK)
        ]
        for user in self._batch_users(urls):
            for address in user.smtp_addresses:
                if address in result:
                    _add(result[address], user)
        return result

    @staticmethod
    def _users_url(odata_filter: str) -> str:
        return f"/users?$filter={quote(odata_filter, safe='')}&$select={USER_SELECT}&$top=999"

    def _batch_users(self, urls: list[str]) -> list[DirectoryUser]:
        """Run relative GET /users URLs through $batch (20 per call), follow paging, retry throttled or
        failed items after their Retry-After when that is short, else raise GraphThrottled."""
        users: list[DirectoryUser] = []
        pending = list(urls)
        for _round in range(_INLINE_WAIT_ROUNDS + 1):
            failed: list[str] = []
            for start in range(0, len(pending), MAX_BATCH):
                failed += self._batch_round(pending[start : start + MAX_BATCH], users)
            if not failed:
                return users
            wait = self.throttled_for
            if wait > self._max_inline_wait or _round == _INLINE_WAIT_ROUNDS:
                raise GraphThrottled(
                    max(wait, 0.0), f"{len(failed)} directory lookups throttled; retry later"
                )
            self._sleep(wait)
            pending = failed
        return users

    def _batch_round(self, urls: list[str], users: list[DirectoryUser]) -> list[str]:
        """One $batch of GET /users URLs; returns the URLs to try again (throttled or failed items).

        Graph reports a throttled item in one of two documented ways: outer 200 (or 424) with the item's
        own 429 and Retry-After (json-batching.md, S18), or the whole batch answered 429 (throttling.md,
        S16). Both block the client for the Retry-After and hand every affected URL back."""
        requests = [{"id": str(n), "method": "GET", "url": url} for n, url in enumerate(urls)]
        try:
            response = self._send("POST", f"{self._graph}/$batch", {"requests": requests}, accept=(424,))
        except GraphThrottled:
            return list(urls)  # the whole batch was refused; _send already recorded the Retry-After
        failed = []
        for item in response.json().get("responses", []):
            url = urls[int(item["id"])]
            status, body = int(item.get("status", 500)), item.get("body") or {}
            if isinstance(body, str):  # some proxies return the inner body as a JSON string
                body = json.loads(body or "{}")
            try:
                self._raise_for_status(status, item.get("headers") or {}, body=body)
            except (GraphThrottled, GraphUnavailable):
                failed.append(url)
                continue
            users.extend(DirectoryUser.from_graph(u) for u in body.get("value", []))
            if body.get("@odata.nextLink"):
                users.extend(DirectoryUser.from_graph(u) for u in self._get_all(body["@odata.nextLink"]))
        return failed


def _add(users: list[DirectoryUser], user: DirectoryUser) -> None:
    if all(u.id != user.id for u in users):
        users.append(user)


def _token_roles(token: str) -> list[str] | None:
    """The `roles` claim of a Graph access token (a JWT), or None if it cannot be read. Not verified:
    only used to explain a missing permission before Graph answers 403."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return [str(r) for r in claims.get("roles", [])]
    except (IndexError, ValueError, AttributeError):
        return None
