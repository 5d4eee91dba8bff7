"""The simulator's ASGI application: routing, Graph bearer auth, fault injection, presence throttling,
`$batch` and the request log. Route handlers live in `login`, `graph_presence`, `graph_directory` and
`control`; this module only decides which one runs and what wraps it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from simulators.microsoft import control, graph_directory, graph_presence, login
from simulators.microsoft.http import Req, Resp, bad_request, graph_error
from simulators.microsoft.state import SimState
from simulators.microsoft.tokens import TokenMinter

Handler = Callable[..., Resp]
_SEG = r"(?P<{}>[^/]+)"

# (method, path pattern, route name, handler); names are what the request log and faults use.
GRAPH_ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = [
    (
        m,
        re.compile("^/v1.0" + p.format(user=_SEG.format("user_id"), group=_SEG.format("group_id")) + "$"),
        n,
        h,
    )
    for m, p, n, h in [
        ("GET", "/users/{user}/presence", "presence.get", graph_presence.get_presence),
        ("GET", "/communications/presences/{user}", "presence.get", graph_presence.get_presence),
        (
            "POST",
            "/communications/getPresencesByUserId",
            "getPresencesByUserId",
            graph_presence.get_presences_by_user_id,
        ),
        ("POST", "/users/{user}/presence/setPresence", "setPresence", graph_presence.set_presence),
        ("POST", "/users/{user}/presence/clearPresence", "clearPresence", graph_presence.clear_presence),
        (
            "POST",
            "/users/{user}/presence/setUserPreferredPresence",
            "setUserPreferredPresence",
            graph_presence.set_user_preferred_presence,
        ),
        (
            "POST",
            "/users/{user}/presence/clearUserPreferredPresence",
            "clearUserPreferredPresence",
            graph_presence.clear_user_preferred_presence,
        ),
        (
            "POST",
            "/users/{user}/presence/setStatusMessage",
            "setStatusMessage",
            graph_presence.set_status_message,
        ),
        ("GET", "/users", "users.list", graph_directory.list_users),
        (
            "GET",
            "/applications\\(appId=(?P<app_id>[^)]+)\\)",
            "applications.get",
            graph_directory.get_application,
        ),
        ("GET", "/users/(?P<key>[^/]+)", "users.get", graph_directory.get_user),
        (
            "GET",
            "/groups/{group}/members(?:/(?P<cast>microsoft\\.graph\\.\\w+))?",
            "groups.members",
            graph_directory.group_members,
        ),
    ]
]
PRESENCE_ROUTES = frozenset(
    {
        "presence.get",
        "getPresencesByUserId",
        "setPresence",
        "clearPresence",
        "setUserPreferredPresence",
        "clearUserPreferredPresence",
        "setStatusMessage",
    }
)
MAX_BATCH = 20  # S18
_OPENID = re.compile(r"^/(?P<tenant>[^/_][^/]*)/v2\.0/\.well-known/openid-configuration$")
_ADMIN_CONSENT = re.compile(r"^/(?P<tenant>[^/_][^/]*)(?P<v2>/v2\.0)?/adminconsent$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/_][^/]*)/oauth2/v2\.0/token$")
_EXPIRED_AUTH = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


class SimulatorApp:
    """ASGI entry point. Requests are handled one at a time under the state lock (they are all fast);
    only injected delays are awaited outside it."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.minter = TokenMinter()

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        req = Req(scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers, body,
                  client_port=(scope.get("client") or (None, None))[1])
        with self.state.lock:
            resp = self.handle(req)
        if resp.delay_s > 0:
            await asyncio.sleep(resp.delay_s)
        raw_headers = [(k.encode(), v.encode()) for k, v in resp.headers.items()]
        raw_headers.append((b"content-length", str(len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": resp.body})

    def handle(self, req: Req) -> Resp:
        if req.path.startswith("/_sim/"):
            return control.dispatch(self.state, req)
        if req.path.startswith("/v1.0/"):
            return self._graph(req, batch_claims=None)
        return self._login(req)

    def _log(
        self,
        req: Req,
        route: str,
        resp: Resp,
        tenant: str | None,
        app: str | None,
        batch: bool,
        credential: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {}
        if credential is not None:
            entry["credential"] = credential  # token requests: "secret" or "assertion:<alg>:<header>"
        self.state.log.add(
            entry
            | {
                "route": route,
                "method": req.method,
                "path": req.path,
                "status": resp.status,
                "tenant": tenant,
                "app": app,
                "batch": batch,
                "time": self.state.clock.now(),
                "connection": req.client_port,
                "cookie": req.headers.get("cookie"),
            }
        )

    def _login(self, req: Req) -> Resp:
        details: dict[str, Any] = {}
        if req.method == "GET" and (m := _OPENID.match(req.path)):
            route, resp = "openid", login.openid_configuration(self.state, req, m["tenant"])
            details["tenant"] = m["tenant"]
        elif req.method == "POST" and (m := _TOKEN.match(req.path)):
            route = "token"
            fault, delay = self._fault(route, None)
            if fault is not None:
                resp = fault
            else:
                resp, details = login.token(self.state, self.minter, req, m["tenant"])
            resp.delay_s = max(resp.delay_s, delay)
        elif req.method == "GET" and (m := _ADMIN_CONSENT.match(req.path)):
            route = "adminconsent"
            resp, details = login.admin_consent(self.state, req, m["tenant"], v2=bool(m["v2"]))
        elif req.method == "GET" and req.path == "/common/discovery/instance":
            route, resp = "discovery", login.instance_discovery(req)
        else:
            route, resp = "unknown", Resp.json(404, {"error": "not_found"})
        self._log(
            req, route, resp, details.get("tenant"), details.get("app"), False, details.get("credential")
        )
        return resp

    def _fault(self, route: str, tenant: str | None) -> tuple[Resp | None, float]:
        """An injected error response (or None: answer normally) and an injected delay."""
        fault = self.state.match_fault(route, tenant)
        if fault is None or fault.status is None:
            return None, fault.delay_s if fault else 0.0
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = self.state.retry_after(fault.retry_after)
        codes = {
            429: "TooManyRequests",
            500: "InternalServerError",
            503: "ServiceNotAvailable",
            504: "GatewayTimeout",
        }
        resp = graph_error(fault.status, codes.get(fault.status, "UnknownError"), "Injected fault.", headers)
        return resp, fault.delay_s

    def _authenticate(self, req: Req) -> Resp | dict[str, Any]:
        auth = req.headers.get("authorization", "")
        if not auth:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        scheme, _, token = auth.partition(" ")
        claims = self.minter.verify(token.strip()) if scheme.lower() == "bearer" else None
        if claims is None:
            return graph_error(
                401, "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217"
            )
        if claims["exp"] <= self.state.clock.now():
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                {"WWW-Authenticate": _EXPIRED_AUTH},
            )
        if claims["tid"] not in self.state.directory.tenants:
            return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        return claims

    def _graph(self, req: Req, batch_claims: dict[str, Any] | None) -> Resp:
        route, handler, params = self._match(req)
        claims = batch_claims if batch_claims is not None else self._authenticate(req)
        tenant = claims.get("tid") if isinstance(claims, dict) else None
        app = claims.get("appid") if isinstance(claims, dict) else None
        resp = self._graph_inner(req, route, handler, params, claims)
        self._log(req, route, resp, tenant, app, batch_claims is not None)
        return resp

    def _graph_inner(
        self,
        req: Req,
        route: str,
        handler: Handler | None,
        params: dict[str, str],
        claims: Resp | dict[str, Any],
    ) -> Resp:
        if isinstance(claims, Resp):
            return claims
        req.claims = claims
        fault, delay = self._fault(route, claims["tid"])
        if fault is not None:
            fault.delay_s = delay
            return fault
        if route == "$batch":
            resp = self._batch(req, claims)
        elif handler is None:
            resp = bad_request(f"Resource not found for the segment '{req.path.rsplit('/', 1)[-1]}'.")
        elif route in PRESENCE_ROUTES and (
            wait := self.state.take_presence_token(claims["appid"], claims["tid"])
        ):
            resp = self._throttled(wait, claims)
        else:
            resp = handler(self.state, req, **params)
        resp.delay_s = max(resp.delay_s, delay)
        return resp

    def _throttled(self, wait: float, claims: dict[str, Any]) -> Resp:
        # S16 body and Retry-After; S17 throttle-scope header.
        headers = {
            "Retry-After": self.state.retry_after(wait),
            "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{claims['appid']}/{claims['tid']}",
        }
        resp = graph_error(429, "TooManyRequests", "Please retry again later.", headers)
        body = resp.payload()
        body["error"]["innerError"].update({"code": "429", "status": "429"})
        return Resp.json(429, body, headers)

    def _match(self, req: Req) -> tuple[str, Handler | None, dict[str, str]]:
        if req.path == "/v1.0/$batch":
            return "$batch", None, {}
        for method, pattern, name, handler in GRAPH_ROUTES:
            if req.method == method and (m := pattern.match(req.path)):
                return name, handler, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return "unknown", None, {}

    def _batch(self, req: Req, claims: dict[str, Any]) -> Resp:
        """JSON batching (S18): <=20 requests, unique ids, dependsOn -> 424, per-item statuses."""
        if req.method != "POST":
            return bad_request("$batch only accepts POST.")
        body = req.json()
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return bad_request("Invalid batch payload format.")
        if len(items) > MAX_BATCH:
            return bad_request(f"Batch request exceeds the maximum of {MAX_BATCH} requests.")
        ids = [str(i.get("id", "")).lower() if isinstance(i, dict) else "" for i in items]
        if "" in ids or len(set(ids)) != len(ids):
            return bad_request("Batch request ids must be present and unique.")
        for item in items:
            if "body" in item and "content-type" not in {k.lower() for k in (item.get("headers") or {})}:
                return bad_request("Content-Type header is required for a batch request with a body.")
            if any(str(d).lower() not in ids for d in item.get("dependsOn", [])):
                return bad_request("dependsOn refers to an unknown request id.")
        results: dict[str, Resp] = {}
        out: list[dict[str, Any]] = []
        for item, item_id in zip(items, ids, strict=True):
            failed = [
                d for d in item.get("dependsOn", []) if results.get(str(d).lower(), Resp(424)).status >= 400
            ]
            resp = (
                Resp.json(424, {"error": {"code": "FailedDependency", "message": "Failed dependency."}})
                if failed
                else self._graph(self._batch_item(req, item), batch_claims=claims)
            )
            results[item_id] = resp
            headers = {k: v for k, v in resp.headers.items() if k.lower() != "request-id"}
            entry: dict[str, Any] = {"id": item["id"], "status": resp.status, "headers": headers}
            if resp.body:
                entry["body"] = resp.payload()
            out.append(entry)
        if self.state.settings.shuffle_batch:
            random.shuffle(out)  # S18: responses may come back in any order
        throttled = [r for r in results.values() if r.status == 429]
        outer = self.state.settings.batch_throttle_status
        if throttled and outer == 429:
            # throttling.md (S16): the batch as a whole is answered 429; the longest item wait applies.
            wait = max(float(r.headers.get("Retry-After", "0")) for r in throttled)
            return self._throttled(wait, claims)
        return Resp.json(outer if throttled else 200, {"responses": out})

    @staticmethod
    def _batch_item(outer: Req, item: dict[str, Any]) -> Req:
        url = urlsplit(str(item.get("url", "")))
        path = url.path if url.path.startswith("/") else "/" + url.path
        headers = {k.lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        headers["authorization"] = outer.headers.get("authorization", "")
        headers["host"] = outer.headers.get("host", "")
        body = json.dumps(item["body"]).encode() if "body" in item else b""
        return Req(str(item.get("method", "GET")).upper(), "/v1.0" + path, url.query, headers, body)
