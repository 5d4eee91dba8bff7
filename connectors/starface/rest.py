"""`StarfaceRestClient`: the STARFACE REST API (tier 1): users, groups and DND through phoneconfig.

Long-lived: a worker keeps one per tenant. It logs in lazily (GET nonce, POST secret; reference §1.1),
sends `authToken` and `X-Version: 2` on every call, and on a 401 logs in again once and retries once
(the token lives 4 h, absolute). All httpx errors are translated in `_send`, the one seam.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from connectors.starface._auth import login_secret, tls_verify
from connectors.starface._errors import (
    StarfaceError,
    StarfaceForbidden,
    StarfaceLoginFailed,
    StarfaceNotFound,
    StarfaceProtocolError,
    StarfaceUnavailable,
)
from connectors.starface._models import AccessCheck, DndWrite, StarfaceGroup, StarfaceUser


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
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._login_id = login_id
        self._password = password
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self._base_url + "/rest",
            verify=tls_verify(verify),
            timeout=timeout,
            transport=transport,
            headers={"X-Version": "2", "Accept": "application/json"},
        )
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

    def set_dnd(self, account_id: int, on: bool) -> DndWrite:
        """Read-modify-write of the whole PhoneConfig; no PUT when DND already has the wanted value.

        `dnd_before` is what the PBX had, which tells the caller whether the user had set DND by hand.
        The REST API has no conditional write, so a change the user makes between our GET and PUT is lost;
        the bridge's DND event and the next drift check reveal it.
        """
        config = self._phone_config(account_id)
        if config.doNotDisturb == on:
            return DndWrite(account_id, dnd_before=on, dnd_after=on, written=False)
        body = {**config.model_dump(), "doNotDisturb": on}
        self._request("PUT", f"/users/{account_id}/phoneconfig", json=body)
        return DndWrite(account_id, dnd_before=config.doNotDisturb, dnd_after=on, written=True)

    def check_access(self) -> AccessCheck:
        """Logs in and proves admin rights: reads the own user, the user list and the group list."""
        where = "GET /rest/users/me"
        me = self._parse(_User, self._json(self._request("GET", "/users/me"), where), where)
        users = self.list_users()
        groups = self.list_groups()
        return AccessCheck(login=me.login, account_id=me.id, user_count=len(users), group_count=len(groups))

    def close(self) -> None:
        """Logs out (best effort: the token dies after 4 h anyway) and closes the connection pool."""
        token, self._token = self._token, None
        if token is not None:
            with contextlib.suppress(StarfaceError):
                self._send("DELETE", "/login", headers={"authToken": token})
        self._http.close()

    # --- internals ---

    def _phone_config(self, account_id: int) -> _PhoneConfig:
        where = f"GET /rest/users/{account_id}/phoneconfig"
        data = self._json(self._request("GET", f"/users/{account_id}/phoneconfig"), where)
        return self._parse(_PhoneConfig, data, where)

    def _request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        token = self._ensure_token()
        response = self._send(method, path, json=json, headers={"authToken": token})
        if response.status_code == 401:  # expired or revoked: log in again once, retry once
            token = self._ensure_token(stale=token)
            response = self._send(method, path, json=json, headers={"authToken": token})
            if response.status_code == 401:
                raise StarfaceProtocolError(
                    f"STARFACE answered 401 to {method} /rest{path} with a token it had just issued; a proxy "
                    "in front of the PBX may be dropping the authToken header"
                )
        self._raise_for_status(response, method, path)
        return response

    def _ensure_token(self, stale: str | None = None) -> str:
        with self._lock:
            if self._token is None or self._token == stale:
                self._token = self._login()
            return self._token

    def _login(self) -> str:
        data = self._json(self._checked(self._send("GET", "/login"), "GET", "/login"), "GET /rest/login")
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
        token = self._json(self._checked(response, "POST", "/login"), "POST /rest/login")
        if not isinstance(token, dict) or not isinstance(token.get("token"), str) or not token["token"]:
            raise StarfaceProtocolError("STARFACE's POST /rest/login answered without a token")
        return token["token"]

    def _send(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """The one seam where httpx errors become connector errors."""
        self.requests_made += 1
        try:
            return self._http.request(method, path, json=json, headers=headers)
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

    def _checked(self, response: httpx.Response, method: str, path: str) -> httpx.Response:
        self._raise_for_status(response, method, path)
        return response

    def _raise_for_status(self, response: httpx.Response, method: str, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        where = f"{method} /rest{path}"
        detail = _error_detail(response)
        if status == 403:
            raise StarfaceForbidden(
                f"STARFACE denied {where} to service account '{self._login_id}'{detail}: give the account "
                "administrator rights in the STARFACE admin interface"
            )
        if status == 404:
            raise StarfaceNotFound(f"STARFACE does not know the resource of {where}{detail}")
        if status >= 500:
            raise StarfaceUnavailable(f"STARFACE answered {status} to {where}{detail}; retrying later")
        raise StarfaceProtocolError(f"STARFACE answered {status} to {where}{detail}")

    @staticmethod
    def _json(response: httpx.Response, where: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
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


def _error_detail(response: httpx.Response) -> str:
    """` (CODE: message)` from a STARFACE `{code, message}` error body, or "" (reference §1.1, S4)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and ("code" in body or "message" in body):
        return f" ({str(body.get('code', ''))[:40]}: {str(body.get('message', ''))[:200]})"
    return ""
