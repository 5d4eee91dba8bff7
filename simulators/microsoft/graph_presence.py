"""Graph presence routes: read one / read many, and the five write actions (graph-api.md sections 1-2, 9).

Every route is scoped to the tenant in the caller's token; a user of another tenant is simply not found.
"""

from __future__ import annotations

import re
from typing import Any

from simulators.microsoft.http import Req, Resp, bad_request, graph_error, not_found
from simulators.microsoft.presence import (
    PREFERRED_PAIRS,
    SESSION_DEFAULT_S,
    SESSION_MAX_S,
    SESSION_MIN_S,
    SET_PRESENCE_PAIRS,
    AppSession,
    parse_duration,
)
from simulators.microsoft.state import SimInputError, SimState, User, parse_time

READ_ROLES = ("Presence.Read.All", "Presence.ReadWrite.All")
WRITE_ROLES = ("Presence.ReadWrite.All",)
MAX_IDS = 650  # S1
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def missing_role(req: Req, roles: tuple[str, ...]) -> Resp | None:
    """403 in the shape Graph uses for presence when the token lacks every accepted role."""
    have = req.claims.get("roles", [])
    if any(role in have for role in roles):
        return None
    return graph_error(
        403,
        "Forbidden",
        (
            f"Missing role permissions on the request. API requires one of '{', '.join(roles)}'. "
            f"Roles on the request '{', '.join(have)}'."
        ),
    )


def _user(state: SimState, req: Req, user_id: str) -> User | None:
    user = state.directory.users.get(user_id.lower())
    return user if user is not None and user.tenant_id == req.claims["tid"] else None


def _shape(state: SimState, view: dict[str, Any]) -> dict[str, Any]:
    if not state.settings.camel_case_presence:
        return view
    # Parser-robustness option: the casing the generated v1.0 metadata shows (section 1).
    return {
        **view,
        "availability": view["availability"][:1].lower() + view["availability"][1:],
        "activity": view["activity"][:1].lower() + view["activity"][1:],
    }


def get_presence(state: SimState, req: Req, user_id: str) -> Resp:
    if (denied := missing_role(req, READ_ROLES)) is not None:
        return denied
    user = _user(state, req, user_id)
    if user is None:
        return not_found(f"User '{user_id}' was not found.")
    view = _shape(state, user.presence.view(state.clock.now()))
    return Resp.json(
        200,
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('"
            f"{user.id}')/presence/$entity",
            **view,
        },
    )


def get_presences_by_user_id(state: SimState, req: Req) -> Resp:
    if (denied := missing_role(req, READ_ROLES)) is not None:
        return denied
    body = req.json()
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        return bad_request("The request body must contain a non-empty 'ids' array.")
    if len(ids) > MAX_IDS:
        return bad_request(f"The number of ids in the request ({len(ids)}) exceeds the maximum of {MAX_IDS}.")
    if not all(isinstance(i, str) and GUID.match(i) for i in ids):
        return bad_request("Each id must be a user object id (GUID).")
    now, tenant_id, users = state.clock.now(), req.claims["tid"], state.directory.users
    values: list[dict[str, Any]] = []
    for user_id in ids:
        user = users.get(user_id.lower())
        if user is not None and user.tenant_id == tenant_id:
            values.append(_shape(state, user.presence.view(now)))
        elif state.settings.unknown_presence_ids == "unknown":
            values.append(
                {
                    "id": user_id,
                    "availability": "PresenceUnknown",
                    "activity": "PresenceUnknown",
                    "statusMessage": None,
                    "outOfOfficeSettings": None,
                    "sequenceNumber": None,
                }
            )
        elif state.settings.unknown_presence_ids == "error":
            return not_found(f"User '{user_id}' was not found.")
    return Resp.json(
        200,
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection("
            "microsoft.graph.presence)",
            "value": values,
        },
    )


def _write_target(state: SimState, req: Req, user_id: str) -> tuple[User | None, dict[str, Any], Resp | None]:
    if (denied := missing_role(req, WRITE_ROLES)) is not None:
        return None, {}, denied
    if "application/json" not in req.headers.get("content-type", ""):
        return None, {}, bad_request("Content-Type must be application/json.")
    body = req.json()
    if not isinstance(body, dict):
        return None, {}, bad_request("The request body must be a JSON object.")
    user = _user(state, req, user_id)
    if user is None:
        return None, {}, not_found(f"User '{user_id}' was not found.")
    return user, body, None


def _expiry(body: dict[str, Any], default_s: float, low: float, high: float | None) -> float | Resp:
    raw = body.get("expirationDuration")
    if raw is None:
        return default_s
    seconds = parse_duration(raw) if isinstance(raw, str) else None
    if seconds is None or seconds < low or (high is not None and seconds > high):
        return bad_request(f"Invalid expirationDuration '{raw}'.")
    return seconds


def set_presence(state: SimState, req: Req, user_id: str) -> Resp:
    user, body, error = _write_target(state, req, user_id)
    if error or user is None:
        return error or not_found()
    # sessionId must be the calling app's client id (S5, docs-contrib#9092).
    if str(body.get("sessionId", "")).lower() != req.claims["appid"]:
        return bad_request("The sessionId must be the application id of the caller.")
    pair = (body.get("availability"), body.get("activity"))
    if pair not in SET_PRESENCE_PAIRS:
        return bad_request(f"The availability/activity pair {pair[0]}/{pair[1]} is not supported.")
    seconds = _expiry(body, SESSION_DEFAULT_S, SESSION_MIN_S, SESSION_MAX_S)
    if isinstance(seconds, Resp):
        return seconds
    now = state.clock.now()
    user.presence.app_sessions[req.claims["appid"]] = AppSession(pair[0], pair[1], now + seconds, now)
    user.presence.touch()
    return Resp(200)


def clear_presence(state: SimState, req: Req, user_id: str) -> Resp:
    user, body, error = _write_target(state, req, user_id)
    if error or user is None:
        return error or not_found()
    session_id = str(body.get("sessionId", "")).lower()
    if session_id != req.claims["appid"]:
        return bad_request("The sessionId must be the application id of the caller.")
    if not user.presence.has_app_session(session_id, state.clock.now()):
        return not_found("The presence session was not found.", code="NotFound")  # S7
    del user.presence.app_sessions[session_id]
    user.presence.touch()
    return Resp(200)


def set_user_preferred_presence(state: SimState, req: Req, user_id: str) -> Resp:
    user, body, error = _write_target(state, req, user_id)
    if error or user is None:
        return error or not_found()
    pair = (body.get("availability"), body.get("activity"))
    if pair not in PREFERRED_PAIRS:
        return bad_request(f"The availability/activity pair {pair[0]}/{pair[1]} is not supported.")
    default = 86400.0 if pair[0] in ("DoNotDisturb", "Busy") else 7 * 86400.0  # S8
    seconds = _expiry(body, default, 1.0, None)
    if isinstance(seconds, Resp):
        return seconds
    user.presence.preferred = (pair[0], pair[1], state.clock.now() + seconds)
    user.presence.touch()
    return Resp(200)


def clear_user_preferred_presence(state: SimState, req: Req, user_id: str) -> Resp:
    user, _, error = _write_target(state, req, user_id)
    if error or user is None:
        return error or not_found()
    user.presence.preferred = None
    user.presence.touch()
    return Resp(200)


def set_status_message(state: SimState, req: Req, user_id: str) -> Resp:
    user, body, error = _write_target(state, req, user_id)
    if error or user is None:
        return error or not_found()
    status = body.get("statusMessage")
    message = status.get("message") if isinstance(status, dict) else None
    if not isinstance(message, dict) or message.get("contentType", "text") != "text":
        return bad_request("statusMessage.message with contentType 'text' is required.")
    content = str(message.get("content", ""))
    expiry = None
    if isinstance(status.get("expiryDateTime"), dict):
        try:
            expiry = parse_time(str(status["expiryDateTime"].get("dateTime", "")).rstrip("Z") + "Z")
        except SimInputError:
            return bad_request("Invalid statusMessage.expiryDateTime.")
    user.presence.status_message = (content, expiry) if content else None
    user.presence.touch()
    return Resp(200)
