"""The simulated STARFACE REST API under /rest (reference §1.1 and the simulator spec §3, items 1-8).

Routes are a registry of (method, path pattern) -> handler. Every route except the login resource needs an
`authToken` header (401 when missing, unknown or expired); admin resources answer 403 to a non-admin token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from simulators.starface._http import Request, Response, error_response, json_response, no_content
from simulators.starface._pbx import Pbx, UserRec

Handler = Callable[[Pbx, Request, "re.Match[str]", UserRec], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = []  # method, path, handler, admin only
_PHONECONFIG_FIELDS = {
    "callWaiting": bool,
    "displayNumberId": int,
    "doNotDisturb": bool,
    "primaryPhoneId": int,
}


def _route(method: str, pattern: str, *, admin: bool) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, re.compile(f"^/rest{pattern}$"), handler, admin))
        return handler

    return register


def handle(pbx: Pbx, req: Request) -> Response:
    if req.path == "/rest/login":
        return _login_resource(pbx, req)
    matched_path = False
    for method, pattern, handler, admin_only in _ROUTES:
        match = pattern.match(req.path)
        if not match:
            continue
        matched_path = True
        if method != req.method:
            continue
        user = pbx.user_for_token(req.headers.get("authToken"))
        if user is None:
            return error_response(401, "UNAUTHORIZED", "missing, unknown or expired authToken")
        if admin_only and not user.admin:
            return error_response(403, "FORBIDDEN", "this resource needs administrative privileges")
        return handler(pbx, req, match, user)
    if matched_path:
        return error_response(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on {req.path}")
    return error_response(404, "NOT_FOUND", f"no resource {req.path}")


def _login_resource(pbx: Pbx, req: Request) -> Response:
    if req.method == "GET":  # §3.1: a fresh single-use nonce, no auth
        return json_response(200, {"loginType": pbx.login_type, "nonce": pbx.issue_nonce(), "secret": None})
    if req.method == "POST":  # §3.2
        try:
            body = req.json()
            token = pbx.login(str(body["loginType"]), str(body["nonce"]), str(body["secret"]))
        except (ValueError, KeyError, TypeError):
            token = None
        if token is None:
            return error_response(400, "LOGIN_FAILED", "invalid login")
        return json_response(200, {"token": token})
    if req.method == "DELETE":  # §3.4
        token = req.headers.get("authToken")
        if pbx.user_for_token(token) is None:
            return error_response(401, "UNAUTHORIZED", "missing, unknown or expired authToken")
        pbx.logout(token or "")
        return no_content()
    return error_response(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on /rest/login")


def _user_json(user: UserRec) -> dict[str, Any]:
    """The `User` schema of reference §1.1 / §3.5 (password always empty when fetched)."""
    return {
        "id": user.id,
        "login": user.login,
        "email": user.email,
        "firstName": user.first_name,
        "familyName": user.family_name,
        "language": user.language,
        "namespace": "",
        "personId": user.person_id,
        "password": None,
        "faxCallerId": "",
        "faxHeader": "",
        "faxCoverPage": False,
        "faxEmailJournal": False,
        "missedCallReport": False,
    }


def _matches(term: str, *values: str) -> bool:
    return not term or any(term.lower() in v.lower() for v in values)


@_route("GET", "/users", admin=True)
def _list_users(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    term = req.query.get("searchTerm", "")
    with pbx.lock:
        users = [
            _user_json(u)
            for u in sorted(pbx.users.values(), key=lambda u: u.id)
            if _matches(term, u.login, u.email, u.first_name, u.family_name)
        ]
    return json_response(200, users)


@_route("GET", "/users/me", admin=False)
def _me(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    return json_response(200, _user_json(me))


def _target_user(pbx: Pbx, user_id: str, me: UserRec) -> UserRec | Response:
    """The addressed user; a non-admin may only address itself (403 otherwise, reference §2 [I])."""
    user = pbx.users.get(int(user_id))
    if user is not None and user.id == me.id:
        return user
    if not me.admin:
        return error_response(403, "FORBIDDEN", "only administrators may access other users")
    if user is None:
        return error_response(404, "NOT_FOUND", f"no user with id {user_id}")
    return user


@_route("GET", r"/users/(\d+)", admin=False)
def _get_user(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    target = _target_user(pbx, match.group(1), me)
    return target if isinstance(target, Response) else json_response(200, _user_json(target))


@_route("GET", r"/users/(\d+)/phoneconfig", admin=False)
def _get_phoneconfig(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    target = _target_user(pbx, match.group(1), me)
    if isinstance(target, Response):
        return target
    with pbx.lock:
        return json_response(200, target.phone_config())


@_route("PUT", r"/users/(\d+)/phoneconfig", admin=False)
def _put_phoneconfig(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """Reference §Correction: the whole PhoneConfig, all four fields required -> 204; DND takes effect."""
    target = _target_user(pbx, match.group(1), me)
    if isinstance(target, Response):
        return target
    try:
        body = req.json()
    except ValueError:
        return error_response(400, "BAD_REQUEST", "body is not JSON")
    if not isinstance(body, dict):
        return error_response(400, "BAD_REQUEST", "body must be a PhoneConfig object")
    for name, kind in _PHONECONFIG_FIELDS.items():
        value = body.get(name)
        if value is None:
            return error_response(400, "BAD_REQUEST", f"PhoneConfig.{name} is required")
        if type(value) is not kind:  # bool is an int subclass: compare exact types
            return error_response(400, "BAD_REQUEST", f"PhoneConfig.{name} must be {kind.__name__}")
    with pbx.lock:
        target.call_waiting = body["callWaiting"]
        target.display_number_id = body["displayNumberId"]
        target.primary_phone_id = body["primaryPhoneId"]
        pbx.set_dnd(target, body["doNotDisturb"], origin="integration")
    return no_content()


def _group_list_item(group: Any) -> dict[str, Any]:
    return {
        "id": group.id,
        "groupname": group.name,
        "groupinternalnumber": group.internal,
        "groupexternalnumber": group.external,
    }


@_route("GET", "/groups", admin=True)
def _list_groups(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    term = req.query.get("searchTerm", "")
    with pbx.lock:
        groups = [
            _group_list_item(g)
            for g in sorted(pbx.groups.values(), key=lambda g: g.id)
            if _matches(term, g.name, g.internal, g.external)
        ]
    return json_response(200, groups)


@_route("GET", r"/groups/(\d+)", admin=True)
def _get_group(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """§3.6: `assignableUsers` lists every user, with `assigned` telling membership."""
    with pbx.lock:
        group = pbx.groups.get(int(match.group(1)))
        if group is None:
            return error_response(404, "NOT_FOUND", f"no group with id {match.group(1)}")
        users = [
            {
                "id": u.id,
                "firstname": u.first_name,
                "lastname": u.family_name,
                "assigned": u.id in group.members,
            }
            for u in sorted(pbx.users.values(), key=lambda u: u.id)
        ]
        return json_response(
            200,
            {
                "id": group.id,
                "groupId": group.group_id,
                "name": group.name,
                "chatGroup": True,
                "voicemail": False,
                "assignableNumbers": [],
                "assignableUsers": users,
            },
        )


@_route("PUT", "/groups", admin=True)
def _put_group(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """§3.6: the whole Group; applies the `assigned` flags of `assignableUsers`."""
    try:
        body = req.json()
        group_id, name, assignable = body["id"], body["name"], body["assignableUsers"]
        flags = {int(a["id"]): bool(a["assigned"]) for a in assignable}
    except (ValueError, KeyError, TypeError):
        return error_response(
            400, "BAD_REQUEST", "body must be a whole Group with id, name and assignableUsers"
        )
    with pbx.lock:
        group = pbx.groups.get(group_id) if isinstance(group_id, int) else None
        if group is None:
            return error_response(404, "NOT_FOUND", f"no group with id {group_id}")
        unknown = set(flags) - set(pbx.users)
        if unknown:
            return error_response(400, "BAD_REQUEST", f"unknown user ids {sorted(unknown)}")
        group.name = str(name)
        group.members = {uid for uid, assigned in flags.items() if assigned} | (group.members - set(flags))
    return no_content()


@_route("GET", "/accounts", admin=True)
def _accounts(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """§3.7: users and groups as `Account`."""
    with pbx.lock:
        accounts = [
            {
                "accountId": u.id,
                "displayInformation": f"{u.first_name} {u.family_name}",
                "federationname": "",
                "firstname": u.first_name,
                "lastname": u.family_name,
                "local": True,
                "primaryInternalPhoneNumber": u.login,
                "type": "USER",
            }
            for u in sorted(pbx.users.values(), key=lambda u: u.id)
        ]
        accounts += [
            {
                "accountId": g.id,
                "displayInformation": g.name,
                "federationname": "",
                "firstname": "",
                "lastname": g.name,
                "local": True,
                "primaryInternalPhoneNumber": g.internal,
                "type": "GROUP",
            }
            for g in sorted(pbx.groups.values(), key=lambda g: g.id)
        ]
    return json_response(200, accounts)
