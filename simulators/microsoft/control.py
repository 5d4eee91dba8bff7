"""The `/_sim/` control API: drive the simulator from tests, the demo and the benchmark.
No authentication (it is a test tool); all bodies and answers are JSON. `MicrosoftSimControl` in
`client.py` wraps every route.

Directory
  POST /_sim/tenants                              tenant in the seed shape -> {"id"}
  POST /_sim/tenants/{tenant}/apps|users|groups    one item in the seed shape -> {"id"}
  POST /_sim/tenants/{tenant}/apps/{app}/secrets   {"secret", "expires"?, "replace": bool}  rotate a secret
  POST /_sim/tenants/{tenant}/apps/{app}/expire-secrets   {}  every secret of the app expires now
  POST /_sim/tenants/{tenant}/apps/{app}/consent   {"consented": bool}   revoke / grant admin consent
  POST /_sim/tenants/{tenant}/apps/{app}/roles     {"roles": [...]}      application roles in new tokens
Multi-tenant application (the provider's app registration) and its consent per customer tenant
  POST /_sim/applications   {"clientId", "homeTenant"?, "redirectUris": [...], "roles": [...], "secret"?,
                             "certificates": [PEM, ...]?} -> {"id"}
  POST /_sim/applications/{app}/certificates   {"certificate": PEM, "replace": false}
       -> {"thumbprint" (SHA-1 hex), "thumbprintSha256"}
  POST /_sim/applications/{app}/consent   {"tenant", "action"}; grant (consent exists now), revoke (the
       customer deleted the enterprise app), approve / refuse (the administrator's answer at the link)
  GET  /_sim/applications/{app}/consent?tenant=   {"consented", "decision"}
Teams clients of a user
  POST /_sim/users/{user}/teams   {"action", "client"="desktop", ...}; actions: sign_in, sign_out, idle,
       active, call_start, call_end, meeting_start, meeting_end, presenting_start, presenting_end,
       calendar_start, calendar_end (a calendar meeting turns InACall into InAMeeting), status_set
       {"availability","activity","expirationDuration"?} (the user's manual status), status_clear,
       oof_on {"message"?}, oof_off
  GET  /_sim/users/{user}/presence   aggregated presence plus the sessions behind it
Faults, clock, settings, log
  POST   /_sim/faults   {"route" (log name or "*"), "status"?, "retryAfter"?, "delaySeconds"?, "count"=1,
                         "tenant"?}   DELETE /_sim/faults clears them
  POST   /_sim/clock/advance {"seconds"}       GET /_sim/clock
  POST   /_sim/config {"tokenLifetime", "presenceLimit", "presenceWindow",
                       "retryAfterFormat" (integer | fractional | mixed, the default),
                       "fractionalRetryAfter" (older switch: true = fractional, false = integer),
                       "batchThrottleStatus" (outer $batch status when an item is throttled: 200, 424, 429),
                       "rejectReusedAssertions", "unknownPresenceIds", "shuffleBatch", "camelCasePresence"}
                       (throttle buckets reset)
  GET    /_sim/requests?route=&since=   {"total", "counts": {route: n}, "entries": [...]}
  DELETE /_sim/requests
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from simulators.microsoft.http import Req, Resp
from simulators.microsoft.presence import PREFERRED_PAIRS, TeamsClient, parse_duration
from simulators.microsoft.state import (
    RETRY_AFTER_FORMATS,
    Application,
    Fault,
    KeyCredential,
    Secret,
    SimInputError,
    SimState,
    Tenant,
    User,
    parse_time,
)


def _error(status: int, message: str) -> Resp:
    return Resp.json(status, {"error": message})


def _tenant(state: SimState, name: str) -> Tenant:
    tenant = state.directory.resolve_tenant(name)
    if tenant is None:
        raise LookupError(f"unknown tenant {name}")
    return tenant


def _user(state: SimState, user_id: str) -> User:
    user = state.directory.users.get(user_id.lower())
    if user is None:
        raise LookupError(f"unknown user {user_id}")
    return user


def _app_action(
    state: SimState, body: dict[str, Any], _query: dict[str, str], tenant: str, app: str, action: str
) -> Resp:
    found = _tenant(state, tenant).apps.get(app.lower())
    if found is None:
        raise LookupError(f"unknown app {app}")
    now = state.clock.now()
    if action == "secrets":
        secret = Secret(str(body["secret"]), parse_time(body.get("expires", "2099-01-01T00:00:00Z")))
        found.secrets = [secret] if body.get("replace", True) else [*found.secrets, secret]
    elif action == "expire-secrets":
        for secret in found.secrets:
            secret.expires_at = min(secret.expires_at, now)
    elif action == "consent":
        found.consented = bool(body["consented"])
    elif action == "roles":
        found.roles = [str(r) for r in body["roles"]]
    else:
        raise LookupError(f"unknown app action {action}")
    return Resp.json(200, {"ok": True})


def _application(state: SimState, client_id: str) -> Application:
    application = state.directory.applications.get(client_id.lower())
    if application is None:
        raise LookupError(f"unknown application {client_id}")
    return application


def _add_certificate(state: SimState, body: dict[str, Any], app: str) -> Resp:
    application = _application(state, app)
    key = KeyCredential.from_pem(str(body["certificate"]))
    keep = [] if body.get("replace", False) else [k for k in application.certificates if k.sha1 != key.sha1]
    application.certificates = [*keep, key]
    return Resp.json(200, {"thumbprint": key.sha1, "thumbprintSha256": key.sha256})


def _consent_state(state: SimState, app: str, tenant_name: str) -> dict[str, Any]:
    application, tenant = _application(state, app), _tenant(state, tenant_name)
    service_principal = tenant.apps.get(application.client_id)
    return {
        "consented": service_principal is not None and service_principal.consented,
        "decision": application.decisions.get(tenant.id, "approve"),
    }


def _consent(state: SimState, body: dict[str, Any], app: str) -> Resp:
    tenant = _tenant(state, str(body["tenant"]))
    state.directory.set_consent(_application(state, app), tenant, str(body["action"]))
    return Resp.json(200, _consent_state(state, app, tenant.id))


_CLIENT_FLAGS = {
    "idle": ("idle", True),
    "active": ("idle", False),
    "call_start": ("in_call", True),
    "call_end": ("in_call", False),
    "meeting_start": ("in_meeting", True),
    "meeting_end": ("in_meeting", False),
    "presenting_start": ("presenting", True),
    "presenting_end": ("presenting", False),
}


def _teams(state: SimState, user: User, body: dict[str, Any]) -> None:
    action, client = str(body.get("action", "")), str(body.get("client", "desktop"))
    presence, now = user.presence, state.clock.now()
    if action == "sign_in":
        presence.clients.setdefault(client, TeamsClient())
    elif action == "sign_out":
        presence.clients.pop(client, None)
    elif action in _CLIENT_FLAGS:
        if client not in presence.clients:
            raise SimInputError(f"client {client!r} is not signed in")
        attr, value = _CLIENT_FLAGS[action]
        setattr(presence.clients[client], attr, value)
    elif action in ("calendar_start", "calendar_end"):
        presence.calendar_meeting = action == "calendar_start"
    elif action == "status_set":
        pair = (body.get("availability"), body.get("activity"))
        if pair not in PREFERRED_PAIRS:
            raise SimInputError(f"Teams does not offer the manual status {pair}")
        seconds = parse_duration(str(body.get("expirationDuration", "P7D")))
        if seconds is None:
            raise SimInputError("bad expirationDuration")
        presence.preferred = (str(pair[0]), str(pair[1]), now + seconds)
    elif action == "status_clear":
        presence.preferred = None
    elif action in ("oof_on", "oof_off"):
        presence.out_of_office = action == "oof_on"
        presence.oof_message = body.get("message") if presence.out_of_office else None
    else:
        raise SimInputError(f"unknown action {action!r}")
    presence.touch()


def _presence(state: SimState, user: User) -> dict[str, Any]:
    now = state.clock.now()
    view = dict(user.presence.view(now))
    view["sessions"] = {
        "clients": {
            name: list(c.state(user.presence.calendar_meeting)) for name, c in user.presence.clients.items()
        },
        "apps": {
            sid: {
                "availability": s.availability,
                "activity": s.activity,
                "expiresIn": s.expires_at - now,
                "sinceRefresh": now - s.last_refresh,
            }
            for sid, s in user.presence.app_sessions.items()
        },
        "preferred": list(user.presence.preferred[:2]) if user.presence.preferred else None,
    }
    return view


def _retry_format(value: Any) -> str:
    if value not in RETRY_AFTER_FORMATS:
        raise SimInputError(f"retryAfterFormat must be one of {', '.join(RETRY_AFTER_FORMATS)}")
    return str(value)


def _batch_status(value: Any) -> int:
    if int(value) not in (200, 424, 429):
        raise SimInputError("batchThrottleStatus must be 200, 424 or 429")
    return int(value)


def _config(state: SimState, body: dict[str, Any]) -> None:
    names = {
        "tokenLifetime": ("token_lifetime_s", int),
        "presenceLimit": ("presence_limit", int),
        "presenceWindow": ("presence_window_s", float),
        "retryAfterFormat": ("retry_after_format", _retry_format),
        "batchThrottleStatus": ("batch_throttle_status", _batch_status),
        "rejectReusedAssertions": ("reject_reused_assertions", bool),
        "unknownPresenceIds": ("unknown_presence_ids", str),
        "shuffleBatch": ("shuffle_batch", bool),
        "camelCasePresence": ("camel_case_presence", bool),
    }
    body = dict(body)
    if "fractionalRetryAfter" in body:  # the older switch: true = fractional, false = integer
        body["retryAfterFormat"] = "fractional" if body.pop("fractionalRetryAfter") else "integer"
    for key, value in body.items():
        if key not in names:
            raise SimInputError(f"unknown setting {key!r}")
        attr, kind = names[key]
        setattr(state.settings, attr, kind(value))
    state.buckets.clear()


def _requests(state: SimState, query: dict[str, str]) -> dict[str, Any]:
    since, route = int(query.get("since", "0")), query.get("route")
    entries = [e for e in state.log.entries if e["seq"] > since and (route is None or e["route"] == route)]
    return {"total": state.log.total, "counts": dict(state.log.counts), "entries": entries}


def _add_fault(state: SimState, body: dict[str, Any]) -> None:
    status = body.get("status")
    if status is not None and int(status) not in (429, 500, 503, 504):
        raise SimInputError("fault status must be 429, 500, 503 or 504")
    retry_after = body.get("retryAfter")
    state.faults.append(
        Fault(
            route=str(body["route"]),
            status=int(status) if status is not None else None,
            delay_s=float(body.get("delaySeconds", 0.0)),
            count=int(body.get("count", 1)),
            retry_after=float(retry_after) if retry_after is not None else None,
            tenant_id=body.get("tenant"),
        )
    )


_Route = tuple[str, re.Pattern[str], Callable[..., Resp]]
_ROUTES: list[_Route] = [
    ("GET", re.compile(r"^/_sim/health$"), lambda s, b, q: Resp.json(200, {"ok": True})),
    (
        "POST",
        re.compile(r"^/_sim/tenants$"),
        lambda s, b, q: Resp.json(201, {"id": s.directory.add_tenant(b).id}),
    ),
    (
        "POST",
        re.compile(r"^/_sim/tenants/(?P<tenant>[^/]+)/apps$"),
        lambda s, b, q, tenant: Resp.json(201, {"id": s.directory.add_app(_tenant(s, tenant), b).client_id}),
    ),
    (
        "POST",
        re.compile(r"^/_sim/tenants/(?P<tenant>[^/]+)/users$"),
        lambda s, b, q, tenant: Resp.json(201, {"id": s.directory.add_user(_tenant(s, tenant), b).id}),
    ),
    (
        "POST",
        re.compile(r"^/_sim/tenants/(?P<tenant>[^/]+)/groups$"),
        lambda s, b, q, tenant: Resp.json(201, {"id": s.directory.add_group(_tenant(s, tenant), b).id}),
    ),
    (
        "POST",
        re.compile(r"^/_sim/tenants/(?P<tenant>[^/]+)/apps/(?P<app>[^/]+)/(?P<action>[\w-]+)$"),
        _app_action,
    ),
    (
        "POST",
        re.compile(r"^/_sim/applications$"),
        lambda s, b, q: Resp.json(201, {"id": s.directory.add_application(b).client_id}),
    ),
    (
        "POST",
        re.compile(r"^/_sim/applications/(?P<app>[^/]+)/certificates$"),
        lambda s, b, q, app: _add_certificate(s, b, app),
    ),
    (
        "POST",
        re.compile(r"^/_sim/applications/(?P<app>[^/]+)/consent$"),
        lambda s, b, q, app: _consent(s, b, app),
    ),
    (
        "GET",
        re.compile(r"^/_sim/applications/(?P<app>[^/]+)/consent$"),
        lambda s, b, q, app: Resp.json(200, _consent_state(s, app, q["tenant"])),
    ),
    (
        "POST",
        re.compile(r"^/_sim/users/(?P<user>[^/]+)/teams$"),
        lambda s, b, q, user: (_teams(s, _user(s, user), b), Resp.json(200, _presence(s, _user(s, user))))[1],
    ),
    (
        "GET",
        re.compile(r"^/_sim/users/(?P<user>[^/]+)/presence$"),
        lambda s, b, q, user: Resp.json(200, _presence(s, _user(s, user))),
    ),
    (
        "POST",
        re.compile(r"^/_sim/faults$"),
        lambda s, b, q: (_add_fault(s, b), Resp.json(201, {"ok": True}))[1],
    ),
    (
        "DELETE",
        re.compile(r"^/_sim/faults$"),
        lambda s, b, q: (s.faults.clear(), Resp.json(200, {"ok": True}))[1],
    ),
    (
        "POST",
        re.compile(r"^/_sim/clock/advance$"),
        lambda s, b, q: (s.clock.advance(float(b["seconds"])), Resp.json(200, {"now": s.clock.now()}))[1],
    ),
    (
        "GET",
        re.compile(r"^/_sim/clock$"),
        lambda s, b, q: Resp.json(200, {"now": s.clock.now(), "offset": s.clock.offset}),
    ),
    ("POST", re.compile(r"^/_sim/config$"), lambda s, b, q: (_config(s, b), Resp.json(200, {"ok": True}))[1]),
    ("GET", re.compile(r"^/_sim/requests$"), lambda s, b, q: Resp.json(200, _requests(s, q))),
    (
        "DELETE",
        re.compile(r"^/_sim/requests$"),
        lambda s, b, q: (s.log.clear(), Resp.json(200, {"ok": True}))[1],
    ),
]


def dispatch(state: SimState, req: Req) -> Resp:
    body = req.json() if req.body else {}
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    for method, pattern, handler in _ROUTES:
        if req.method == method and (match := pattern.match(req.path)):
            try:
                return handler(state, body, req.query, **match.groupdict())
            except KeyError as exc:
                return _error(400, f"bad control request: missing {exc!s}")
            except LookupError as exc:
                return _error(404, str(exc))
            except (SimInputError, TypeError, ValueError) as exc:
                return _error(400, f"bad control request: {exc!s}")
    return _error(404, f"no control route {req.method} {req.path}")
