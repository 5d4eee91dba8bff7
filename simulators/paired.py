"""Matching seeds for both simulators: one customer whose STARFACE users and Microsoft 365 users share
e-mail addresses, as in a real tenant. Used by the pipeline tests, the demo and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.microsoft import make_seed as make_microsoft_seed
from simulators.starface import make_seed as make_starface_seed

STARFACE_ADMIN_LOGIN = "0001"
STARFACE_ADMIN_PASSWORD = "service-pass"
BRIDGE_SECRET = "bridge-secret"
FIRST_ACCOUNT_ID = 100


@dataclass(frozen=True)
class PairedSeeds:
    microsoft: dict[str, Any]
    starface: dict[str, Any]

    @property
    def tenant(self) -> dict[str, Any]:
        """The Microsoft tenant (id, domain, apps, users)."""
        return self.microsoft["tenants"][0]

    @property
    def app(self) -> dict[str, Any]:
        return self.tenant["apps"][0]

    def entra_id(self, index: int) -> str:
        return self.tenant["users"][index]["id"]

    def login(self, index: int) -> str:
        return str(1000 + FIRST_ACCOUNT_ID + index)

    def account(self, index: int) -> int:
        return FIRST_ACCOUNT_ID + index


def paired_seeds(n_users: int, name: str = "contoso", *, bridge: bool = True,
                 duplicate_rate: float = 0.0) -> PairedSeeds:
    """User i is user{i}@{name}.example in both systems (STARFACE account 100+i, login 1100+i)."""
    microsoft = make_microsoft_seed(n_users=n_users, tenants=(name,))
    starface = make_starface_seed(
        n_users, admin_login=STARFACE_ADMIN_LOGIN, admin_password=STARFACE_ADMIN_PASSWORD,
        first_id=FIRST_ACCOUNT_ID, bridge=bridge, bridge_secret=BRIDGE_SECRET, duplicate_rate=duplicate_rate,
    )
    domain = microsoft["tenants"][0]["domain"]
    for user in starface["users"]:
        if user["id"] >= FIRST_ACCOUNT_ID:
            user["email"] = f"user{user['id'] - FIRST_ACCOUNT_ID}@{domain}"
    return PairedSeeds(microsoft, starface)
