"""The simulated PBX's seed: its validated shape, and a builder for test and benchmark seeds.

A seed is plain JSON (the `--seed FILE` of `teamsconnect sim starface`), so it is validated strictly here:
a typo in a key is an error, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ChatPresence = Literal["AVAILABLE", "AWAY", "DO_NOT_DISTURB", "EXTENDED_AWAY", "FREE_FOR_CHAT", "UNAVAILABLE"]
TelephonyState = Literal["ACTIVE", "AVAILABLE", "QUEUE_PAUSE", "RINGING", "UNAVAILABLE"]
CHAT_PRESENCES: tuple[str, ...] = ChatPresence.__args__  # type: ignore[attr-defined]
TELEPHONY_STATES: tuple[str, ...] = TelephonyState.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedPhoneConfig(_Strict):
    """PhoneConfig of reference §Correction (all four fields; doNotDisturb lives on the user)."""

    callWaiting: bool = True
    displayNumberId: int | None = None
    primaryPhoneId: int | None = None


class SeedUser(_Strict):
    id: int
    login: str = Field(min_length=1)
    password: str = Field(min_length=1)
    email: str = ""
    firstName: str
    familyName: str
    admin: bool = False
    language: str = "de"
    dnd: bool = False
    chatPresence: ChatPresence = "AVAILABLE"
    chatPresenceMessage: str = ""
    telephonyState: TelephonyState = "AVAILABLE"
    phoneConfig: SeedPhoneConfig = Field(default_factory=SeedPhoneConfig)


class SeedGroup(_Strict):
    id: int
    name: str
    members: list[int] = Field(default_factory=list)
    internalNumber: str = ""
    externalNumber: str = ""


class SeedBridge(_Strict):
    instance: str = "TeamsConnectBridge"
    secret: str = Field(min_length=1)
    webhook: str | None = None
    pbxVersion: str = "9.0.0.9"
    contractVersion: Literal["1", "1.1"] = "1.1"
    duplicateRate: float = Field(default=0.0, ge=0.0, le=1.0)


class Seed(_Strict):
    users: list[SeedUser]
    groups: list[SeedGroup] = Field(default_factory=list)
    bridge: SeedBridge | None = None
    loginType: Literal["Internal", "ActiveDirectory"] = "Internal"

    @model_validator(mode="after")
    def _ids_are_consistent(self) -> Seed:
        user_ids = [u.id for u in self.users]
        if len(set(user_ids)) != len(user_ids):
            raise ValueError("seed: user ids must be unique")
        logins = [u.login for u in self.users]
        if len(set(logins)) != len(logins):
            raise ValueError("seed: user logins must be unique")
        group_ids = [g.id for g in self.groups]
        if len(set(group_ids)) != len(group_ids) or set(group_ids) & set(user_ids):
            raise ValueError("seed: group ids must be unique and differ from user ids (both are account ids)")
        for group in self.groups:
            unknown = set(group.members) - set(user_ids)
            if unknown:
                raise ValueError(f"seed: group {group.id} lists unknown members {sorted(unknown)}")
        return self


def load_seed(data: dict[str, Any]) -> Seed:
    """Validates a seed dict; raises pydantic.ValidationError naming the bad key."""
    return Seed.model_validate(data)


def make_seed(
    n_users: int,
    *,
    admin_login: str = "0001",
    admin_password: str = "service-pass",
    first_id: int = 100,
    group_size: int | None = None,
    bridge: bool = True,
    bridge_secret: str = "bridge-secret",
    webhook: str | None = None,
    duplicate_rate: float = 0.0,
) -> dict[str, Any]:
    """A seed with one admin service account (id 1) and `n_users` users with e-mails.

    User i gets id `first_id + i`, login `str(1000 + first_id + i)`, e-mail `user{i}@example.test` and
    password `pw-{login}`. Group 7 "Support" holds the first `group_size` users (default: half).
    """
    users: list[dict[str, Any]] = [
        {
            "id": 1,
            "login": admin_login,
            "password": admin_password,
            "email": "pbx-admin@example.test",
            "firstName": "Service",
            "familyName": "Account",
            "admin": True,
        }
    ]
    for i in range(n_users):
        account = first_id + i
        login = str(1000 + account)
        users.append(
            {
                "id": account,
                "login": login,
                "password": f"pw-{login}",
                "email": f"user{i}@example.test",
                "firstName": f"User{i}",
                "familyName": "Example",
            }
        )
    size = n_users // 2 if group_size is None else group_size
    seed: dict[str, Any] = {
        "users": users,
        "groups": [
            {
                "id": 7,
                "name": "Support",
                "members": [first_id + i for i in range(min(size, n_users))],
                "internalNumber": "20",
            }
        ],
    }
    if bridge:
        seed["bridge"] = {
            "instance": "TeamsConnectBridge",
            "secret": bridge_secret,
            "webhook": webhook,
            "duplicateRate": duplicate_rate,
        }
    return seed
