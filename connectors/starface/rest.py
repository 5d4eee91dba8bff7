"""`StarfaceRestClient`: the STARFACE REST API (tier 1): users, groups and DND through phoneconfig.

Long-lived: a worker keeps one per tenant. It logs in lazily (GET nonce, POST secret; reference §1.1),
sends `authToken` and `X-Version: 2` on every call, and on a 401 logs in again once and retries once
(the token lives 4 h, absolute). All httpx errors are translated in `_send`, the one seam.

Every call succeeds only with the status the vendor's Swagger (REST 6.7) documents as its success: 200 for
the reads and the login, 204 for PUT phoneconfig and logout. Anything else is an error; in particular
PUT phoneconfig documents `200 "Unexpected error"`, a write the PBX did not apply. STARFACE uses 401 both
for a dead token and for "no Administrator permission", so a 401 that survives a fresh login is told
apart by reading `/rest/users/me` with the same token. docs/starface-bridge.md lists, per endpoint, what
the vendor documents and what we assume where it is silent.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import threading
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from connectors import egress
from connectors.http_clients import DEFAULT_CONNECTIONS, DEFAULT_HEADERS, send, timeouts, transports_for
from connectors.starface._auth import login_secret
from connectors.starface._errors import (
    StarfaceError,
    StarfaceForbidden,
    StarfaceLoginFailed,
    StarfaceNotFound,
    StarfaceProtocolError,
    StarfaceUnavailable,
    StarfaceWriteFailed,
    address_refused,
)
from connectors.starface._models import AccessCheck, DndWrite, StarfaceGroup, StarfaceUser
from connectors.tls import tls_context
from connectors.trace import trace_exchange

logger = logging.getLogger(__name__)


class _User(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    login: str
    email: str | None = None
    firstName: str | None = None
    familyName: str | None = None

    def typed(self) -> StarfaceUser:
        return StarfaceUser(
            self.id, self.login, (self.email or "").strip(), self.firstName or "", self.familyName or ""
        )


class _GroupItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    groupname: str = ""


class _AssignableUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    assigned: bool


class _Group(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    assignableUsers: list[_AssignableUser]


class _PhoneConfig(BaseModel):
    """Reference §Correction: all four fields required; unknown extra fields are kept and written back."""

    model_config = ConfigDict(extra="allow", strict=True)
    callWaiting: bool
    displayNumberId: int
    doNotDisturb: bool
    primaryPhoneId: int


_ADMIN_FIX = (
    "in the STARFACE web interface open Admin > Benutzer, edit this account and, on the tab "
    "'Berechtigungen', tick 'Administrator'"
)
_PHONECONFIG_PATH = re.compile(r"/users/(\d+)/phoneconfig")
_GROUP_PATH = re.compile(r"/groups/(\d+)")

_USERS = TypeAdapter(list[_User])
_GROUPS = TypeAdapter(list[_GroupItem])


class StarfaceRestClient:
    def __init__(
        self,
        base_url: str,
        login_id: str,
        password: str,
        *,
        verify: bool | str | ssl.SSLContext = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._login_id = login_id
        self._password = password
        self._timeout = timeout
        tls = tls_context(verify)
        # ``connections``: requests this client may send at once (the PBX gate's limit).
        self._http = transports_for(tls, connections, transport)
        self._headers = {**DEFAULT_HEADERS, "X-Version": "2", "Accept": "application/json"}
        self._timeouts = timeouts(timeout)
        self._token: str | None = None
        self._lock = threading.Lock()
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"StarfaceRestClient(base_url={self._base_url!r}, login_id={self._login_id!r})"

    def __enter__(self) -> StarfaceRestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public API ---

    def list_users(self) -> list[StarfaceUser]:
        data = self._json(self._request("GET", "/users"), "GET /rest/users")
        return [u.typed() for u in self._parse(_USERS, data, "GET /rest/users")]

    def list_groups(self) -> list[StarfaceGroup]:
        data = self._json(self._request("GET", "/groups"), "GET /rest/groups")
        return [StarfaceGroup(g.id, g.groupname) for g in self._parse(_GROUPS, data, "GET /rest/groups")]

    def group_member_ids(self, group_id: int) -> list[int]:
        """Ids of the users assigned to the group (`assignableUsers[assigned]`, reference §2)."""
        where = f"GET /rest/groups/{group_id}"
        group = self._parse(_Group, self._json(self._request("GET", f"/groups/{group_id}"), where), where)
        return sorted(u.id for u in group.assignableUsers if u.assigned)

    def get_dnd(self, account_id: int) -> bool:
        return self._phone_config(account_id).doNotDisturb

    def read_phone_config(self, account_id: int) -> _PhoneConfig:
        """The user's whole PhoneConfig (``.doNotDisturb`` is the DND), to hand back to ``set_dnd``."""
        return self._phone_config(account_id)

    def set_dnd(self, account_id: int, on: bool, config: _PhoneConfig | None = None) -> DndWrite:
        """Read-modify-write of the whole PhoneConfig; no PUT when DND already has the wanted value.

        `dnd_before` is what the PBX had, which tells the caller whether the user had set DND by hand.
        The REST API has no conditional write, so a change the user makes between our GET and PUT is lost;
        the bridge's DND event and the next drift check reveal it. ``config``, from ``read_phone_config``
        just before, saves the second GET of a caller that read the DND to decide on the write.
        """
        config = config if config is not None else self._phone_config(account_id)
        if config.doNotDisturb == on:
            return DndWrite(account_id, dnd_before=on, dnd_after=on, written=False)
        body = {**config.model_dump(), "doNotDisturb": on}
        self._request("PUT", f"/users/{account_id}/phoneconfig", json=body, expect=204)
        return DndWrite(account_id, dnd_before=config.doNotDisturb, dnd_after=on, written=True)

    def check_access(self) -> AccessCheck:
        """Logs in and proves admin rights: reads the own user, the user list, another user's phoneconfig
        (the right DND writes need) and the group list.

        `GET /rest/users` answers 200 to anyone with "the users the current user can access"; we assume a
        PBX lists a non-administrator only itself, so a list holding nobody else is reported as missing
        the Administrator permission.
        """
        where = "GET /rest/users/me"
        me = self._parse(_User, self._json(self._request("GET", "/users/me"), where), where)
        users = self.list_users()
        other = next((u for u in users if u.id != me.id), None)
        if other is None:
            raise StarfaceForbidden(
                f"STARFACE lists no user but service account '{self._login_id}' itself to it, which is what "
                f"an account without the Administrator permission sees: {_ADMIN_FIX}"
            )
        self._phone_config(other.id)
        groups = self.list_groups()
        return AccessCheck(login=me.login, account_id=me.id, user_count=len(users), group_count=len(groups))

    def close(self) -> None:
        """Logs out (best effort: the token dies after 4 h anyway) and closes the connection pool."""
        token, self._token = self._token, None
        if token is not None:
            with contextlib.suppress(StarfaceError):
                response = self._send("DELETE", "/login", headers={"authToken": token})
                self._check(response, "DELETE", "/login", 204)
        self._http.close()

    # --- internals ---

    def _phone_config(self, account_id: int) -> _PhoneConfig:
        where = f"GET /rest/users/{account_id}/phoneconfig"
        data = self._json(self._request("GET", f"/users/{account_id}/phoneconfig"), where)
        return self._parse(_PhoneConfig, data, where)

    def _request(self, method: str, path: str, *, json: Any = None, expect: int = 200) -> httpx.Response:
        """One call; `expect` is the call's documented success status, every other status raises."""
        token = self._ensure_token()
        response = self._send(method, path, json=json, headers={"authToken": token})
        if response.status_code == 401:  # expired or revoked, or no permission: log in again once, retry once
            token = self._ensure_token(stale=token)
            response = self._send(method, path, json=json, headers={"authToken": token})
            if response.status_code == 401:
                raise self._unauthorized_again(method, path, token)
        self._check(response, method, path, expect)
        return response

    def _unauthorized_again(self, method: str, path: str, token: str) -> StarfaceError:
        """The error for a 401 to a token issued a moment ago: missing permission, or a broken token path.

        The spec documents 401 as "does not have Administrator permission" (/conferenceConfiguration), so a
        token that still reads the own user (`/rest/users/me`, allowed to everyone) is valid and the 401
        means "not allowed". No further login: that would loop without ever changing the answer.
        """
        where = f"{method} /rest{path}"
        if path != "/users/me":
            probe = self._send("GET", "/users/me", headers={"authToken": token})
            if probe.status_code == 200:
                return StarfaceForbidden(
                    f"STARFACE refused {where} to service account '{self._login_id}' (401 right after a "
                    f"fresh login): the account lacks the Administrator permission; {_ADMIN_FIX}"
                )
        return StarfaceProtocolError(
            f"STARFACE answered 401 to {where} with a token it had just issued; a proxy in front of the "
            "PBX may be dropping the authToken header"
        )

    def _ensure_token(self, stale: str | None = None) -> str:
        with self._lock:
            if self._token is None or self._token == stale:
                self._token = self._login()
            return self._token

    def _login(self) -> str:
        data = self._json(self._check(self._send("GET", "/login"), "GET", "/login", 200), "GET /rest/login")
        if not isinstance(data, dict) or not isinstance(data.get("nonce"), str):
            raise StarfaceProtocolError("STARFACE's GET /rest/login gave no nonce; is this a STARFACE PBX?")
        login_type = str(data.get("loginType") or "Internal")
        secret = login_secret(login_type, self._login_id, data["nonce"], self._password)
        response = self._send(
            "POST", "/login", json={"loginType": login_type, "nonce": data["nonce"], "secret": secret}
        )
        if response.status_code in (400, 401, 403):
            raise StarfaceLoginFailed(
                f"STARFACE rejected the login of service account '{self._login_id}' ({login_type}): "
                "check the login id and password in the tenant's STARFACE settings"
            )
        token = self._json(self._check(response, "POST", "/login", 200), "POST /rest/login")
        if not isinstance(token, dict) or not isinstance(token.get("token"), str) or not token["token"]:
            raise StarfaceProtocolError("STARFACE's POST /rest/login answered without a token")
        return token["token"]

    def _send(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """The one seam where httpx errors become connector errors."""
        self.requests_made += 1
        started = time.perf_counter()
        try:
            request = httpx.Request(method, f"{self._base_url}/rest{path}", json=json,
                                    headers={**self._headers, **headers} if headers else self._headers,
                                    extensions={"timeout": self._timeouts})
            response = send(self._http.client(), request)
        except egress.InternalAddressRefused as exc:
            raise address_refused(self._base_url, exc) from None
        except httpx.TimeoutException as exc:
            raise StarfaceUnavailable(
                f"STARFACE at {self._base_url} did not answer {method} /rest{path} within {self._timeout} s; "
                "check that the PBX is up and reachable from the service"
            ) from exc
        except httpx.HTTPError as exc:
            raise StarfaceUnavailable(
                f"cannot reach STARFACE at {self._base_url} ({type(exc).__name__}); check the PBX address, "
                "its certificate and the firewall (service -> PBX HTTPS)"
            ) from exc
        trace_exchange(logger, "starface", f"{method} /rest{path}", response.status_code, started,
                       len(response.request.content), len(response.content))
        return response

    def _check(self, response: httpx.Response, method: str, path: str, expect: int) -> httpx.Response:
        """Returns `response` if it has the call's documented success status `expect`, else raises.

        A write (anything but a GET and the login) that gets 200 (PUT phoneconfig's documented "Unexpected
        error"), a redirect, another 2xx or a 5xx raises `StarfaceWriteFailed`: the PBX may not have applied
        it. A 500 to a user's phoneconfig or a group is how STARFACE answers an id it does not know (the
        spec documents no 404 there), so it is checked against the documented 404 of `/rest/users/{id}` or
        the group list before being called transient.
        """
        status = response.status_code
        if status == expect:
            return response
        where = f"{method} /rest{path}"
        detail = _error_detail(response)
        if status == 403:
            raise StarfaceForbidden(
                f"STARFACE denied {where} to service account '{self._login_id}'{detail}: the account lacks "
                f"the Administrator permission; {_ADMIN_FIX}"
            )
        if status == 404:
            raise StarfaceNotFound(f"STARFACE does not know the resource of {where}{detail}")
        if status >= 500:
            missing = self._missing_target(path, where, status)
            if missing is not None:
                raise missing
        if method != "GET" and path != "/login" and (status < 400 or status >= 500):
            transient = status == 200 or status >= 500
            what = '"Unexpected error"' if status == 200 else str(status)
            raise StarfaceWriteFailed(
                f"STARFACE answered {status} to {where}{detail} instead of {expect}: {what}, the change was "
                + (
                    "not applied; retrying later"
                    if transient
                    else "not confirmed; check the PBX address "
                    "(a redirect means http/https or a path prefix is wrong)"
                ),
                status,
                permanent=not transient,
            )
        if status >= 500:
            raise StarfaceUnavailable(f"STARFACE answered {status} to {where}{detail}; retrying later")
        raise StarfaceProtocolError(f"STARFACE answered {status} to {where}{detail} instead of {expect}")

    def _missing_target(self, path: str, where: str, status: int) -> StarfaceNotFound | None:
        """A `StarfaceNotFound` if the user or group `path` addresses is gone, else None (also if unsure)."""
        headers = {"authToken": self._token or ""}
        with contextlib.suppress(StarfaceError):
            if match := _PHONECONFIG_PATH.fullmatch(path):
                user_id = match.group(1)
                if self._send("GET", f"/users/{user_id}", headers=headers).status_code == 404:
                    return StarfaceNotFound(
                        f"STARFACE user {user_id} does not exist (any more): {where} answered {status} and "
                        f"GET /rest/users/{user_id} 404; the next directory sync drops the user"
                    )
            elif match := _GROUP_PATH.fullmatch(path):
                group_id = int(match.group(1))
                listing = self._send("GET", "/groups", headers=headers)
                known = _group_ids(listing) if listing.status_code == 200 else None
                if known is not None and group_id not in known:
                    return StarfaceNotFound(
                        f"STARFACE group {group_id} does not exist (any more): {where} answered {status} "
                        "and GET /rest/groups does not list it; choose another group in the tenant's user "
                        "selection"
                    )
        return None

    @staticmethod
    def _json(response: httpx.Response, where: str) -> Any:
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:  # nested past the recursion limit: not a PBX answer
            raise StarfaceProtocolError(f"STARFACE's answer to {where} is not JSON") from exc

    @staticmethod
    def _parse(schema: Any, data: Any, where: str) -> Any:
        try:
            if isinstance(schema, TypeAdapter):
                return schema.validate_python(data)
            return schema.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise StarfaceProtocolError(
                f"STARFACE's answer to {where} does not match the REST schema: {field}: {first['msg']}"
            ) from exc


def _group_ids(response: httpx.Response) -> set[int] | None:
    """The ids of a `GET /rest/groups` answer, or None when it is not a group list."""
    try:
        return {g.id for g in _GROUPS.validate_json(response.content)}
    except ValidationError:
        return None


def _error_detail(response: httpx.Response) -> str:
    """` (CODE: message)` from a STARFACE `{code, message}` error body, or "" (reference §1.1, S4)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return ""
    if isinstance(body, dict) and ("code" in body or "message" in body):
        return f" ({str(body.get('code', ''))[:40]}: {str(body.get('message', ''))[:200]})"
    return ""
