"""The simulated STARFACE REST API under /rest, modelled on the vendor's Swagger for REST 6.7.0.22
(STARFACEGmbH/rest-examples `javascript/docs/starface-api.yaml`, reference §1.1 and §Correction).

What the spec documents is answered as documented. Where it leaves a case open the code says
"spec leaves open: ..." and docs/starface-bridge.md ("REST endpoints: what STARFACE documents") lists it.
Rules shared by every route:
- Every route except /rest/login needs an `authToken` header: 401 when it is missing, unknown or expired
  (spec leaves open: the status; the vendor's Java client logs in only when it gets a 401).
- "No administrator permission" is 401, the status the spec documents for it on /conferenceConfiguration
  (spec leaves open: users, groups and phoneconfig document neither 401 nor 403).
- A failure the spec gives no status for gets the operation's documented error: 500 "Unexpected error",
  or 200 "Unexpected error" where the operation documents that (PUT phoneconfig, POST users).
- One trailing slash is ignored, as JAX-RS matching does (the vendor's PHP client PUTs /rest/groups/).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from simulators.starface._http import Request, Response, error_response, json_response, no_content
from simulators.starface._pbx import GroupRec, Pbx, UserRec

Handler = Callable[[Pbx, Request, "re.Match[str]", UserRec], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []
_PHONECONFIG_FIELDS = {
    "callWaiting": bool,
    "displayNumberId": int,
    "doNotDisturb": bool,
    "primaryPhoneId": int,
}
_USER_REQUIRED = ("email", "familyName", "firstName", "language", "login")  # spec `User.required`


def _route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, re.compile(f"^/rest{pattern}$"), handler))
        return handler

    return register


def _unexpected(status: int, message: str) -> Response:
    """The spec's "Unexpected error" (500, or 200 where documented). Spec leaves open: its body."""
    return error_response(status, "UNEXPECTED_ERROR", message)


def _not_allowed(me: UserRec) -> Response:
    # the spec's own wording for this 401 (/conferenceConfiguration)
    return error_response(
        401,
        "NOT_ALLOWED",
        f"The user with the given account id {me.id} does not have Administrator permission",
    )


def handle(pbx: Pbx, req: Request) -> Response:
    path = req.path[:-1] if req.path.endswith("/") and req.path != "/rest/" else req.path
    if path == "/rest/login":
        return _login_resource(pbx, req)
    matched_path = False
    for method, pattern, handler in _ROUTES:
        match = pattern.match(path)
        if not match:
            continue
        matched_path = True
        if method != req.method:
            continue
        user = pbx.user_for_token(req.headers.get("authToken"))
        if user is None:
            return error_response(401, "UNAUTHORIZED", "missing, unknown or expired authToken")
        return handler(pbx, req, match, user)
    # spec leaves open: unknown paths and methods; a JAX-RS server answers 404 and 405
    if matched_path:
        return error_response(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on {req.path}")
    return error_response(404, "NOT_FOUND", f"no resource {req.path}")


def _login_resource(pbx: Pbx, req: Request) -> Response:
    if req.method == "GET":
        # `Login.secret` is typed string, but the vendor's own login example shows `"secret": null` in this
        # answer (reference §1.1, S5): we send null, as the PBX does, and clients must accept both.
        return json_response(200, {"loginType": pbx.login_type, "nonce": pbx.issue_nonce(), "secret": None})
    if req.method == "POST":
        try:
            body = req.json()
            token = pbx.login(str(body["loginType"]), str(body["nonce"]), str(body["secret"]))
        except (ValueError, KeyError, TypeError):
            token = None
        if token is None:
            # The spec types this 400's body as AuthToken (a generator artefact: every status of the
            # operation carries the method's return type). Deviation: we send the {code, message} error
            # body the vendor's JavaScript example reads (reference §1.1, S4); clients must not rely on it.
            return error_response(400, "LOGIN_FAILED", "invalid login")
        return json_response(200, {"token": token})
    if req.method == "DELETE":
        token = req.headers.get("authToken")
        # spec leaves open: an invalid token ("204: if a valid authToken was provided it has just been
        # invalidated"); we answer 401 like every other call with a bad token
        if pbx.user_for_token(token) is None:
            return error_response(401, "UNAUTHORIZED", "missing, unknown or expired authToken")
        pbx.logout(token or "")
        return no_content()
    return error_response(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on /rest/login")


def _user_json(user: UserRec) -> dict[str, Any]:
    """The spec's `User`; `password` is a string, "empty when a user is fetched"."""
    return {
        "id": user.id,
        "login": user.login,
        "email": user.email,
        "firstName": user.first_name,
        "familyName": user.family_name,
        "language": user.language,
        "namespace": "",
        "personId": user.person_id,
        "password": "",
        "faxCallerId": "",
        "faxHeader": "",
        "faxCoverPage": False,
        "faxEmailJournal": False,
        "missedCallReport": False,
    }


def _matches(term: str, *values: str) -> bool:
    return not term or any(term.lower() in v.lower() for v in values)


def _json_object(req: Request) -> dict[str, Any] | None:
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


# --- users ---


@_route("GET", "/users")
def _list_users(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """200 "users the current user can access". Spec leaves open: what a non-administrator can access;
    we answer only the own user (never 401/403: the spec documents only 200 and 500 here)."""
    term = req.query.get("searchTerm", "")
    with pbx.lock:
        users = [
            _user_json(u)
            for u in sorted(pbx.users.values(), key=lambda u: u.id)
            if (me.admin or u.id == me.id) and _matches(term, u.login, u.email, u.first_name, u.family_name)
        ]
    return json_response(200, users)


@_route("POST", "/users")
def _create_user(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """201 created; 200 "Unexpected error" for a body we cannot use (spec leaves open: which failures get
    200 and which 500; we use 200, the operation's own error). Spec leaves open: the 201 body (none)."""
    if not me.admin:
        return _not_allowed(me)
    body = _json_object(req)
    if body is None or any(not isinstance(body.get(f), str) for f in _USER_REQUIRED):
        return _unexpected(200, "a User needs the strings " + ", ".join(_USER_REQUIRED))
    password = body.get("password")
    if not isinstance(password, str) or not password:
        return _unexpected(200, "a new User needs a password")
    with pbx.lock:
        if body["login"] in pbx.by_login:
            return _unexpected(200, f"login {body['login']} is taken")
        pbx.add_user(
            body["login"], password, body["email"], body["firstName"], body["familyName"], body["language"]
        )
    return Response(201)


def _target_user(pbx: Pbx, user_id: str, me: UserRec, missing: Response) -> UserRec | Response:
    """The addressed user, `missing` for an unknown id, 401 when a non-administrator addresses another
    user (spec leaves open: other users' resources document no 401/403; 401 is the spec's admin status)."""
    user = pbx.users.get(int(user_id))
    if user is not None and user.id == me.id:
        return user
    if not me.admin:
        return _not_allowed(me)
    return missing if user is None else user


@_route("GET", r"/users/me")
def _me(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    return json_response(200, _user_json(me))


@_route("GET", r"/users/(\d+)")
def _get_user(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    # The spec types this 404's body as User (a generator artefact). Deviation: we send {code, message}.
    missing = error_response(404, "NOT_FOUND", f"A User with the given userId {match.group(1)} was not found")
    target = _target_user(pbx, match.group(1), me, missing)
    return target if isinstance(target, Response) else json_response(200, _user_json(target))


@_route("PUT", r"/users/(\d+)")
def _put_user(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """204 / 404 / 500. A non-empty `password` sets a new one (spec: "defines a new password")."""
    missing = error_response(404, "NOT_FOUND", f"A User with the given userId {match.group(1)} was not found")
    with pbx.lock:
        target = _target_user(pbx, match.group(1), me, missing)
        if isinstance(target, Response):
            return target
        body = _json_object(req)
        if body is None or any(not isinstance(body.get(f), str) for f in _USER_REQUIRED):
            return _unexpected(500, "a User needs the strings " + ", ".join(_USER_REQUIRED))
        if body["login"] != target.login:  # spec leaves open: changing the login; we refuse it
            return _unexpected(500, "the login of a user cannot be changed here")
        target.email, target.language = body["email"], body["language"]
        target.first_name, target.family_name = body["firstName"], body["familyName"]
        if isinstance(body.get("password"), str) and body["password"]:
            target.password = body["password"]
    return no_content()


@_route("DELETE", r"/users/(\d+)")
def _delete_user(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    if not me.admin:
        return _not_allowed(me)
    if not pbx.remove_user(int(match.group(1))):
        return error_response(
            404, "NOT_FOUND", f"A User with the given userId {match.group(1)} was not found"
        )
    return no_content()


# --- phoneconfig (the DND switch) ---


@_route("GET", r"/users/(\d+)/phoneconfig")
def _get_phoneconfig(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """200 PhoneConfig / 500. Spec leaves open: an unknown user id; 500 is the only documented error."""
    missing = _unexpected(500, f"no PhoneConfig for user id {match.group(1)}")
    with pbx.lock:
        target = _target_user(pbx, match.group(1), me, missing)
        if isinstance(target, Response):
            return target
        return json_response(200, target.phone_config())


@_route("PUT", r"/users/(\d+)/phoneconfig")
def _put_phoneconfig(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """204 applied; 200 "Unexpected error" (nothing applied); 500 "Unexpected error".

    Spec leaves open: which failures get 200 and which 500. We answer a body that is not a whole
    PhoneConfig (the four required fields with their types) with 200 and nothing applied, and an unknown
    user id with 500 as the GET does. Spec leaves open: fields beyond the four; ignored.
    """
    missing = _unexpected(500, f"no PhoneConfig for user id {match.group(1)}")
    with pbx.lock:
        target = _target_user(pbx, match.group(1), me, missing)
        if isinstance(target, Response):
            return target
        body = _json_object(req)
        if body is None:
            return _unexpected(200, "the body must be a PhoneConfig object")
        for name, kind in _PHONECONFIG_FIELDS.items():
            if type(body.get(name)) is not kind:  # bool is an int subclass: compare exact types
                return _unexpected(200, f"PhoneConfig.{name} is required and must be {kind.__name__}")
        target.call_waiting = body["callWaiting"]
        target.display_number_id = body["displayNumberId"]
        target.primary_phone_id = body["primaryPhoneId"]
        pbx.set_dnd(target, body["doNotDisturb"], origin="integration")
    return no_content()


# --- groups ---


def _group_list_item(group: GroupRec) -> dict[str, Any]:
    return {
        "id": group.id,
        "groupname": group.name,
        "groupinternalnumber": group.internal,
        "groupexternalnumber": group.external,
    }


@_route("GET", "/groups")
def _list_groups(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """200 "a list of accessable groups". Spec leaves open: what a non-administrator can access; we answer
    the groups it is a member of."""
    term = req.query.get("searchTerm", "")
    with pbx.lock:
        groups = [
            _group_list_item(g)
            for g in sorted(pbx.groups.values(), key=lambda g: g.id)
            if (me.admin or me.id in g.members) and _matches(term, g.name, g.internal, g.external)
        ]
    return json_response(200, groups)


@_route("GET", r"/groups/(\d+)")
def _get_group(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """200 Group / 500; `assignableUsers` lists every user, `assigned` tells membership (reference §2).
    Spec leaves open: an unknown group id; 500 is the only documented error."""
    if not me.admin:
        return _not_allowed(me)
    with pbx.lock:
        group = pbx.groups.get(int(match.group(1)))
        if group is None:
            return _unexpected(500, f"no group with id {match.group(1)}")
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


def _assignments(pbx: Pbx, body: dict[str, Any]) -> dict[int, bool] | str:
    """`assignableUsers` as {user id: assigned}, or what is wrong with it."""
    assignable = body.get("assignableUsers", [])
    if not isinstance(assignable, list) or not all(
        isinstance(a, dict) and type(a.get("id")) is int and isinstance(a.get("assigned", False), bool)
        for a in assignable
    ):
        return "assignableUsers must be a list of {id, assigned}"
    flags = {a["id"]: a.get("assigned", False) for a in assignable}
    unknown = set(flags) - set(pbx.users)
    return f"unknown user ids {sorted(unknown)}" if unknown else flags


@_route("PUT", "/groups")
def _put_group(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """204 / 500. Applies the `assigned` flags of the users listed; spec leaves open: users left out of
    `assignableUsers`. They keep their membership: the vendor's Java client adds a user to a group by
    PUTting a group whose `assignableUsers` holds only that user."""
    if not me.admin:
        return _not_allowed(me)
    body = _json_object(req)
    if body is None or type(body.get("id")) is not int or not isinstance(body.get("name"), str):
        return _unexpected(500, "the body must be a whole Group with id and name")
    with pbx.lock:
        group = pbx.groups.get(body["id"])
        if group is None:
            return _unexpected(500, f"no group with id {body['id']}")
        flags = _assignments(pbx, body)
        if isinstance(flags, str):
            return _unexpected(500, flags)
        group.name = body["name"]
        group.members = {uid for uid, on in flags.items() if on} | (group.members - set(flags))
    return no_content()


@_route("POST", "/groups")
def _create_group(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """204 "Group created" / 500 (spec: 204, no body, so the new id is only visible in GET /groups)."""
    if not me.admin:
        return _not_allowed(me)
    body = _json_object(req)
    if body is None or not isinstance(body.get("name"), str) or not body["name"]:
        return _unexpected(500, "the body must be a Group with a name")
    with pbx.lock:
        flags = _assignments(pbx, body)
        if isinstance(flags, str):
            return _unexpected(500, flags)
        pbx.add_group(body["name"], {uid for uid, on in flags.items() if on})
    return no_content()


@_route("DELETE", r"/groups/(\d+)")
def _delete_group(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """204 / 500; spec leaves open: an unknown group id (500, the only documented error)."""
    if not me.admin:
        return _not_allowed(me)
    with pbx.lock:
        if pbx.groups.pop(int(match.group(1)), None) is None:
            return _unexpected(500, f"no group with id {match.group(1)}")
    return no_content()


@_route("GET", "/accounts")
def _accounts(pbx: Pbx, req: Request, match: re.Match[str], me: UserRec) -> Response:
    """200 [Account] / 500 (reference §3.7). Spec leaves open: what a non-administrator sees; 401 here."""
    if not me.admin:
        return _not_allowed(me)
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
