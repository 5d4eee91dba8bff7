"""Seed builders for tests, the demo and the benchmark: deterministic ids, the issue-3 seed shape."""

from __future__ import annotations

import uuid
from typing import Any

ALL_ROLES = ["Presence.ReadWrite.All", "User.Read.All", "GroupMember.Read.All"]


def stable_id(*parts: object) -> str:
    """A deterministic GUID, so seeds (and failures) are reproducible."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "teamsconnect-sim/" + "/".join(map(str, parts))))


def make_tenant(
    name: str = "contoso",
    n_users: int = 10,
    *,
    secret: str = "s3cret-value",
    roles: list[str] | None = None,
    secret_expires: str = "2099-01-01T00:00:00Z",
    n_groups: int = 1,
) -> dict[str, Any]:
    """One tenant: `<name>.example`, one app, `n_users` users user{i}@<domain>, groups of all users."""
    domain = f"{name}.example"
    users = [
        {
            "id": stable_id(name, "user", i),
            "mail": f"user{i}@{domain}",
            "userPrincipalName": f"user{i}@{domain}",
            "displayName": f"User {i}",
            "proxyAddresses": [f"SMTP:user{i}@{domain}", f"smtp:u{i}@alias.{domain}"],
        }
        for i in range(n_users)
    ]
    groups = [
        {"id": stable_id(name, "group", g), "displayName": f"Group {g}", "members": [u["id"] for u in users]}
        for g in range(n_groups)
    ]
    return {
        "id": stable_id(name, "tenant"),
        "domain": domain,
        "apps": [
            {
                "clientId": stable_id("app"),
                "secret": secret,
                "secretExpires": secret_expires,
                "roles": list(ALL_ROLES if roles is None else roles),
            }
        ],
        "users": users,
        "groups": groups,
    }


def make_seed(
    n_users: int = 10, tenants: tuple[str, ...] = ("contoso",), **tenant_options: Any
) -> dict[str, Any]:
    """A seed with the same app registration (multi-tenant app) consented in each named tenant."""
    return {"tenants": [make_tenant(name, n_users, **tenant_options) for name in tenants]}
