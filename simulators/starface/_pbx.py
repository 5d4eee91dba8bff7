"""The simulated PBX's state: users, groups, REST tokens and nonces, per-user DND / chat / telephony state.

Every state change goes through one method here, which also emits the bridge event (if a bridge module is
installed), so REST writes, bridge calls and simulated users all raise events the same way. The hash
formulas are implemented here independently of `connectors.starface` on purpose: a shared bug would
otherwise pass every test; the reference's test vectors pin both sides.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulators.starface.seed import Seed

NONCE_LIFETIME_S = 60.0  # reference §3.1: nonces single-use, short-lived [I]
_NONCE_ALPHABET = string.ascii_lowercase + string.digits

EventSink = Callable[[dict[str, Any]], None]


def _sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def internal_login_secret(login: str, nonce: str, password: str) -> str:
    """Reference §1.1 step 2, Internal: loginId:hex(SHA512(loginId + nonce + hex(SHA512(password))))."""
    return f"{login}:{_sha512_hex(login + nonce + _sha512_hex(password))}"


def active_directory_login_secret(login: str, nonce: str, password: str) -> str:
    """Reference §1.1 step 2, ActiveDirectory: Base64(loginId + nonce + password), no prefix."""
    return base64.b64encode((login + nonce + password).encode("utf-8")).decode("ascii")


def uci_token(login: str, password: str) -> str:
    """Reference §1.2 (>= 6.4.2): loginId:hex(SHA512(loginId + "*" + hex(SHA512(password))))."""
    return f"{login}:{_sha512_hex(login + '*' + _sha512_hex(password))}"


@dataclass
class UserRec:
    id: int
    login: str
    password: str
    email: str
    first_name: str
    family_name: str
    language: str
    admin: bool
    dnd: bool
    chat_presence: str
    chat_message: str
    telephony: str
    call_waiting: bool
    display_number_id: int
    primary_phone_id: int
    person_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def phone_config(self) -> dict[str, Any]:
        return {
            "callWaiting": self.call_waiting,
            "displayNumberId": self.display_number_id,
            "doNotDisturb": self.dnd,
            "primaryPhoneId": self.primary_phone_id,
        }


@dataclass
class GroupRec:
    id: int
    name: str
    internal: str
    external: str
    members: set[int]
    group_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class BridgeConfig:
    instance: str
    secret: str
    pbx_version: str
    contract_version: str = "1.1"


#: Sends one signed test event now (contract 1.1 sendTestEvent): event -> {sent, status, answer, webhookUrl}.
TestSender = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class _Token:
    user_id: int
    expires_at: float


class Pbx:
    """Thread-safe PBX state; all public methods take the one lock."""

    def __init__(self, seed: Seed, *, token_lifetime_s: float, events: EventSink) -> None:
        self.lock = threading.RLock()
        self.token_lifetime_s = token_lifetime_s
        self.login_type = seed.loginType
        self._events = events
        self.users: dict[int, UserRec] = {}
        for u in seed.users:
            self.users[u.id] = UserRec(
                id=u.id,
                login=u.login,
                password=u.password,
                email=u.email,
                first_name=u.firstName,
                family_name=u.familyName,
                language=u.language,
                admin=u.admin,
                dnd=u.dnd,
                chat_presence=u.chatPresence,
                chat_message=u.chatPresenceMessage,
                telephony=u.telephonyState,
                call_waiting=u.phoneConfig.callWaiting,
                display_number_id=u.phoneConfig.displayNumberId or 10_000 + u.id,
                primary_phone_id=u.phoneConfig.primaryPhoneId or 20_000 + u.id,
            )
        self.by_login = {u.login: u for u in self.users.values()}
        self.groups = {
            g.id: GroupRec(
                id=g.id,
                name=g.name,
                internal=g.internalNumber,
                external=g.externalNumber,
                members=set(g.members),
            )
            for g in seed.groups
        }
        self.bridge = (
            BridgeConfig(seed.bridge.instance, seed.bridge.secret, seed.bridge.pbxVersion,
                         seed.bridge.contractVersion)
            if seed.bridge
            else None
        )
        self.clock_skew_s = 0.0  # a PBX clock that is off (no NTP): occurredAt, ping time, webhook stamps
        self.send_test: TestSender | None = None
        self._tokens: dict[str, _Token] = {}
        self._nonces: dict[str, float] = {}

    # --- REST login (reference §1.1, §3.1-3.4) ---

    def issue_nonce(self) -> str:
        nonce = "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(26))
        now = time.monotonic()
        with self.lock:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t < NONCE_LIFETIME_S}
            self._nonces[nonce] = now
        return nonce

    def login(self, login_type: str, nonce: str, secret: str) -> str | None:
        """Returns a new token, or None for any failure (unknown nonce, user or secret). Burns the nonce."""
        with self.lock:
            issued = self._nonces.pop(nonce, None)
            if issued is None or time.monotonic() - issued >= NONCE_LIFETIME_S:
                return None
            if _normal_login_type(login_type) != _normal_login_type(self.login_type):
                return None
            user = self._user_for_secret(nonce, secret)
            if user is None:
                return None
            token = secrets.token_urlsafe(32)
            self._tokens[token] = _Token(user.id, time.monotonic() + self.token_lifetime_s)
            return token

    def _user_for_secret(self, nonce: str, secret: str) -> UserRec | None:
        if self.login_type == "Internal":
            login, sep, _ = secret.partition(":")
            user = self.by_login.get(login) if sep else None
            if user and secrets.compare_digest(
                secret, internal_login_secret(user.login, nonce, user.password)
            ):
                return user
            return None
        for user in self.users.values():  # AD secrets carry no login prefix: try each user
            expected = active_directory_login_secret(user.login, nonce, user.password)
            if secrets.compare_digest(secret, expected):
                return user
        return None

    def user_for_token(self, token: str | None) -> UserRec | None:
        if not token:
            return None
        with self.lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None
            if time.monotonic() >= entry.expires_at:
                del self._tokens[token]
                return None
            return self.users.get(entry.user_id)

    def logout(self, token: str) -> None:
        with self.lock:
            self._tokens.pop(token, None)

    def expire_tokens(self, login: str | None = None) -> int:
        with self.lock:
            doomed = [
                t for t, e in self._tokens.items() if login is None or self.users[e.user_id].login == login
            ]
            for token in doomed:
                del self._tokens[token]
            return len(doomed)

    def user_for_uci_token(self, token: str | None) -> UserRec | None:
        if not token:
            return None
        login, sep, _ = token.partition(":")
        user = self.by_login.get(login) if sep else None
        if user and secrets.compare_digest(token, uci_token(user.login, user.password)):
            return user
        return None

    # --- directory changes through REST (POST/PUT/DELETE /rest/users, /rest/groups) ---

    def add_user(
        self, login: str, password: str, email: str, first: str, family: str, language: str
    ) -> UserRec:
        with self.lock:
            new_id = max([*self.users, *self.groups, 0]) + 1  # users and groups share the account id space
            user = UserRec(
                id=new_id,
                login=login,
                password=password,
                email=email,
                first_name=first,
                family_name=family,
                language=language,
                admin=False,
                dnd=False,
                chat_presence="AVAILABLE",
                chat_message="",
                telephony="AVAILABLE",
                call_waiting=True,
                display_number_id=10_000 + new_id,
                primary_phone_id=20_000 + new_id,
            )
            self.users[new_id] = user
            self.by_login[login] = user
            return user

    def remove_user(self, user_id: int) -> bool:
        with self.lock:
            user = self.users.pop(user_id, None)
            if user is None:
                return False
            self.by_login.pop(user.login, None)
            for group in self.groups.values():
                group.members.discard(user_id)
            self._tokens = {t: e for t, e in self._tokens.items() if e.user_id != user_id}
            return True

    def add_group(self, name: str, members: set[int]) -> GroupRec:
        with self.lock:
            new_id = max([*self.users, *self.groups, 0]) + 1
            group = GroupRec(id=new_id, name=name, internal="", external="", members=members)
            self.groups[new_id] = group
            return group

    # --- state changes: each emits its bridge event (contract "Events from the bridge") ---

    def set_dnd(self, user: UserRec, on: bool, origin: str) -> None:
        with self.lock:
            if user.dnd == on:
                return
            user.dnd = on
            self._emit("dnd", user, origin, dnd=on)

    def set_chat(self, user: UserRec, presence: str | None, message: str, origin: str) -> None:
        with self.lock:
            new_presence = presence or user.chat_presence
            if (new_presence, message) == (user.chat_presence, user.chat_message):
                return
            user.chat_presence, user.chat_message = new_presence, message
            self._emit("presence", user, origin, chatPresence=new_presence, chatPresenceMessage=message)

    def set_telephony(self, user: UserRec, state: str, origin: str) -> None:
        with self.lock:
            if user.telephony == state:
                return
            user.telephony = state
            self._emit("telephony", user, origin, telephonyState=state)

    def _emit(self, kind: str, user: UserRec, origin: str, **fields: Any) -> None:
        if self.bridge is None:  # no module installed: nobody listens to the PBX's internal events
            return
        event = {
            "eventId": str(uuid.uuid4()),
            "type": kind,
            "account": user.id,
            "login": user.login,
            "occurredAt": self.now_ms(),
            **fields,
            "origin": origin,
        }
        self._events(event)

    def now_ms(self) -> int:
        """The PBX clock in ms since the epoch (skewed when a test says the PBX clock is off)."""
        return int((time.time() + self.clock_skew_s) * 1000)

    def user_state(self, user: UserRec) -> dict[str, Any]:
        with self.lock:
            return {
                "id": user.id,
                "login": user.login,
                "dnd": user.dnd,
                "chatPresence": user.chat_presence,
                "chatPresenceMessage": user.chat_message,
                "telephonyState": user.telephony,
                "phoneConfig": user.phone_config(),
            }


def _normal_login_type(value: str) -> str:
    # Swagger enum says Internal/ActiveDirectory, the POST description INTERNAL/ACTIVE_DIRECTORY (§1.1)
    return value.replace("_", "").lower()
