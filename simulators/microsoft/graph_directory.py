"""Graph directory routes: `GET /users` ($filter, $select, $top, paging), `GET /users/{id|upn}` and
`GET /groups/{id}/members` (graph-api.md sections 5 and 9). Scoped to the token's tenant.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from simulators.microsoft.http import Req, Resp, bad_request, graph_error
from simulators.microsoft.odata_filter import FilterError, compile_filter
from simulators.microsoft.state import SimState, User
from simulators.microsoft.user_schema import BY_LOWER, DEFAULT_SELECT, SINGLE_USER_ONLY

USER_ROLES = (
    "User.Read.All",
    "User.ReadBasic.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
GROUP_MEMBER_ROLES = (
    "GroupMember.Read.All",
    "Group.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
APPLICATION_ROLES = (
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
DEFAULT_PAGE, MAX_PAGE = 100, 999


def _denied(req: Req, roles: tuple[str, ...]) -> Resp | None:
    if any(role in req.claims.get("roles", []) for role in roles):
        return None
    return graph_error(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def _select(req: Req, collection: bool) -> tuple[list[str], Resp | None]:
    """The properties `$select` names (the defaults without it). An unknown name is a 400; a property
    Graph only returns for a single user, selected on a collection, is a 501 (S20)."""
    raw = req.query.get("$select")
    if not raw:
        return list(DEFAULT_SELECT), None
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in wanted if p.lower() not in BY_LOWER]
    if unknown:
        return [], bad_request(
            f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.user'.",
            code="Request_BadRequest",
        )
    fields = list(dict.fromkeys(BY_LOWER[p.lower()] for p in wanted))
    single_only = [f for f in fields if f in SINGLE_USER_ONLY]
    if collection and single_only:
        return [], graph_error(
            501,
            "NotImplemented",
            f"The property '{single_only[0]}' does not support being selected on a collection of users; "
            "read it for one user at a time.",
        )
    return fields, None


def _project(user: User, fields: list[str]) -> dict[str, Any]:
    resource = user.resource()
    return {f: resource[f] for f in fields}


def _page_size(req: Req) -> int | Resp:
    raw = req.query.get("$top")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        return bad_request(
            f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
            code="Request_BadRequest",
        )
    return int(raw)


def _advanced(req: Req) -> bool:
    return req.headers.get("consistencylevel", "").lower() == "eventual" and req.query.get("$count") == "true"


def _page(state: SimState, req: Req, items: list[dict[str, Any]], context: str) -> Resp:
    """One page of `items` and an opaque `$skiptoken` nextLink valid only for the same tenant (S20)."""
    size = _page_size(req)
    if isinstance(size, Resp):
        return size
    offset = 0
    if "$skiptoken" in req.query:
        saved = state.skiptokens.get(req.query["$skiptoken"])
        if saved is None or saved[0] != req.claims["tid"]:
            return bad_request("Invalid or expired $skiptoken.", code="Request_BadRequest")
        offset = saved[1]
    body: dict[str, Any] = {"@odata.context": context}
    if req.query.get("$count") == "true" and offset == 0:
        body["@odata.count"] = len(items)  # the first page only; later pages only carry the nextLink
    if offset + size < len(items):
        token = secrets.token_urlsafe(16)
        state.skiptokens[token] = (req.claims["tid"], offset + size)
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = token
        host = req.headers.get("host", "graph.microsoft.com")
        body["@odata.nextLink"] = f"https://{host}{req.path}?{urlencode(params, quote_via=quote, safe='$')}"
    body["value"] = items[offset : offset + size]
    return Resp.json(200, body)


def list_users(state: SimState, req: Req) -> Resp:
    if (denied := _denied(req, USER_ROLES)) is not None:
        return denied
    query, advanced = req.query, _advanced(req)
    if "$count" in query and not advanced:
        return bad_request(
            "$count requires the ConsistencyLevel: eventual header.", code="Request_BadRequest"
        )
    if "$search" in query:
        return bad_request("$search is not supported by this simulator.", code="Request_UnsupportedQuery")
    fields, error = _select(req, collection=True)
    if error:
        return error
    tenant = state.directory.tenants[req.claims["tid"]]
    users = list(tenant.users.values())
    if "$filter" in query:
        try:
            compiled = compile_filter(query["$filter"], advanced)
        except FilterError as exc:
            return bad_request(str(exc), code="Request_UnsupportedQuery")
        if compiled.terms is not None:  # look the values up, as Graph's index does, then test only those
            users = tenant.users_with(compiled.terms)
        users = [u for u in users if compiled.predicate(u.resource())]
    # The context names the selected properties only when $select was given (S20 examples).
    selected = f"({','.join(fields)})" if req.query.get("$select") else ""
    return _page(
        state,
        req,
        [_project(u, fields) for u in users],
        f"https://graph.microsoft.com/v1.0/$metadata#users{selected}",
    )


def get_user(state: SimState, req: Req, key: str) -> Resp:
    if (denied := _denied(req, USER_ROLES)) is not None:
        return denied
    fields, error = _select(req, collection=False)
    if error:
        return error
    tenant = state.directory.tenants[req.claims["tid"]]
    wanted = key.lower()
    user = tenant.users.get(wanted) or next(
        (u for u in tenant.users.values() if u.user_principal_name.lower() == wanted), None
    )
    if user is None:
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its "
            "queried reference-property objects are not present.",
        )
    return Resp.json(
        200,
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            **_project(user, fields),
        },
    )


def group_members(state: SimState, req: Req, group_id: str, cast: str | None = None) -> Resp:
    if (denied := _denied(req, GROUP_MEMBER_ROLES)) is not None:
        return denied
    if cast not in (None, "microsoft.graph.user", "microsoft.graph.group"):
        return bad_request(f"Unsupported type cast '{cast}'.", code="Request_BadRequest")
    tenant = state.directory.tenants[req.claims["tid"]]
    group = tenant.groups.get(group_id.lower())
    if group is None:
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{group_id}' does not exist or one of "
            "its queried reference-property objects are not present.",
        )
    fields, error = _select(req, collection=True)
    if error:
        return error
    can_read_users = _denied(req, USER_ROLES) is None
    items: list[dict[str, Any]] = []
    for member_id in group.members:
        user = tenant.users.get(member_id)
        if user is not None and cast in (None, "microsoft.graph.user"):
            # Objects the app may not read come back as id + type only (S21).
            props = _project(user, fields) if can_read_users else {"id": user.id}
            items.append({"@odata.type": "#microsoft.graph.user", **props})
        elif member_id in tenant.groups and cast in (None, "microsoft.graph.group"):
            items.append(
                {
                    "@odata.type": "#microsoft.graph.group",
                    "id": member_id,
                    "displayName": tenant.groups[member_id].display_name,
                }
            )
    return _page(state, req, items, "https://graph.microsoft.com/v1.0/$metadata#directoryObjects")


def get_application(state: SimState, req: Req, app_id: str) -> Resp:
    """`GET /applications(appId='{appId}')`: the app registration of the token's tenant, with its
    passwordCredentials (endDateTime, hint = the secret's first three characters; never the secret).
    Needs Application.Read.All, which a customer grants only if they want expiry read automatically."""
    if (denied := _denied(req, APPLICATION_ROLES)) is not None:
        return denied
    tenant = state.directory.tenants[req.claims["tid"]]
    app = tenant.apps.get(app_id.strip("'").lower())
    if app is None:
        return graph_error(404, "Request_ResourceNotFound",
                           f"Resource '{app_id}' does not exist or one of its queried reference-property "
                           "objects are not present.")
    credentials = [
        {
            "keyId": f"00000000-0000-4000-8000-{index:012d}",
            "displayName": f"secret {index + 1}",
            "hint": secret.value[:3],
            "secretText": None,
            "startDateTime": None,
            "endDateTime": _iso(secret.expires_at),
        }
        for index, secret in enumerate(app.secrets)
    ]
    context = "https://graph.microsoft.com/v1.0/$metadata#applications(passwordCredentials)/$entity"
    return Resp.json(200, {"@odata.context": context, "passwordCredentials": credentials})


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
