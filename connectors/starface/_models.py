"""Typed values the STARFACE connector returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ChatPresence(StrEnum):
    """STARFACE module API ChatPresence (reference §1.3)."""

    AVAILABLE = "AVAILABLE"
    AWAY = "AWAY"
    DO_NOT_DISTURB = "DO_NOT_DISTURB"
    EXTENDED_AWAY = "EXTENDED_AWAY"
    FREE_FOR_CHAT = "FREE_FOR_CHAT"
    UNAVAILABLE = "UNAVAILABLE"


class TelephonyState(StrEnum):
    """STARFACE module API TelephonyState (reference §1.3)."""

    ACTIVE = "ACTIVE"
    AVAILABLE = "AVAILABLE"
    QUEUE_PAUSE = "QUEUE_PAUSE"
    RINGING = "RINGING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class StarfaceUser:
    """A STARFACE user from `GET /rest/users`; `email` may be "" (reported, never guessed)."""

    id: int
    login: str
    email: str
    first_name: str
    family_name: str


@dataclass(frozen=True)
class DndWrite:
    """Outcome of `set_dnd`: the DND found before the write, the DND asked for, and whether a PUT was sent."""

    account_id: int
    dnd_before: bool
    dnd_after: bool
    written: bool


@dataclass(frozen=True)
class AccessCheck:
    """What `check_access` proved: the service account logs in, is an admin and sees users and groups."""

    login: str
    account_id: int
    user_count: int
    group_count: int


@dataclass(frozen=True)
class BridgeInfo:
    """`ping`: the contract version the bridge speaks ("1" or "1.1"), the PBX version and (1.1) the PBX
    clock in ms since the epoch; `sent_at`/`received_at` bracket the call on our clock (for clock skew)."""

    version: str
    pbx_version: str
    pbx_time_ms: int | None = None
    sent_at: float | None = None
    received_at: float | None = None


@dataclass(frozen=True)
class BridgeTestSend:
    """`sendTestEvent` (contract 1.1): the bridge's report of the one signed test event it POSTed: our
    HTTP status (0: no answer), the start of our answer (or the network error) and the URL it posted to."""

    sent: bool
    status: int
    answer: str
    webhook_url: str


@dataclass(frozen=True)
class BridgeUserState:
    account: int
    login: str
    dnd: bool
    chat_presence: ChatPresence
    chat_presence_message: str
    telephony_state: TelephonyState


@dataclass(frozen=True)
class BridgeChatStatus:
    account: int
    chat_presence: ChatPresence
    chat_presence_message: str


@dataclass(frozen=True)
class StarfaceEvent:
    """A verified bridge webhook event. Exactly the fields of its `type` are set; the others are None."""

    event_id: str
    type: str  # "telephony" | "dnd" | "presence" | "test" (contract 1.1: sendTestEvent, never processed)
    account: int
    login: str
    occurred_at: datetime  # UTC, from the PBX clock
    origin: str  # "user" | "integration" (REST API, a module or the bridge)
    telephony_state: TelephonyState | None = None
    dnd: bool | None = None
    chat_presence: ChatPresence | None = None
    chat_presence_message: str | None = None
    nonce: str | None = None  # type "test" only: the nonce the service passed to sendTestEvent


@dataclass(frozen=True)
class StarfaceGroup:
    id: int
    name: str
