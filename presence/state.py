"""What the engine reads (observations, events, read-backs) and what it records (applied states).

Applied states are the memory that makes the engine idempotent and ownership-aware. They are stored
as JSON per user (`to_json` / `from_json`) and written back with compare-and-set against the value the
decision was made from: a decision made from an applied state that has changed since must be dropped
and made again, never stored over the newer value.

Ordering. Graph's `sequenceNumber` is documented as a lexicographically sortable version stamp
(graph-api.md section 0.5, e.g. "A0129311063"), so two stamps of the same user are compared as plain
strings, never parsed. When either side has no stamp (older API versions, shortened payloads) the
observation time decides instead. STARFACE events are ordered by their `occurredAt` (PBX clock), and
only against other events: the PBX clock is never compared with ours.

All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from presence.categories import Category


class StateError(ValueError):
    """Raised when a stored applied state cannot be loaded; the message names the field."""


@dataclass(frozen=True, slots=True)
class TeamsObservation:
    """One Graph presence read of one user (getPresencesByUserId item)."""

    availability: str
    activity: str
    out_of_office: bool
    sequence_number: str | None
    observed_at: datetime


def is_older(
    sequence_number: str | None, observed_at: datetime | None,
    than_sequence: str | None, than_observed_at: datetime | None,
) -> bool:
    """True if the first observation is strictly older than the second (see module docstring).

    Equal stamps are not older: a redelivered observation is decided again, and idempotence makes
    the second decision a no-op.
    """
    if sequence_number is not None and than_sequence is not None:
        return sequence_number < than_sequence
    return observed_at is not None and than_observed_at is not None and observed_at < than_observed_at


class Origin(StrEnum):
    """Who caused a STARFACE change (starface-bridge.md events)."""

    USER = "user"
    INTEGRATION = "integration"  # the REST API, a module or the bridge: for us, usually our own echo


class EventKind(StrEnum):
    TELEPHONY = "telephony"
    DND = "dnd"
    PRESENCE = "presence"


@dataclass(frozen=True, slots=True)
class StarfaceEvent:
    """A bridge webhook event, already validated at the edge (field names follow the contract)."""

    kind: EventKind
    origin: Origin
    occurred_at: datetime
    telephony_state: str | None = None  # ACTIVE, AVAILABLE, QUEUE_PAUSE, RINGING, UNAVAILABLE
    dnd: bool | None = None
    chat_presence: str | None = None
    chat_text: str | None = None


@dataclass(frozen=True, slots=True)
class StarfaceReading:
    """STARFACE state read back (phoneconfig or bridge getStates); None means "not read"."""

    dnd: bool | None = None
    chat_text: str | None = None  # "" = no text shown
    telephony_state: str | None = None
    chat_symbol: str | None = None  # chat presence shown (AVAILABLE, DO_NOT_DISTURB, ...)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_CATEGORIES = {category.value: category for category in Category}


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    raw = data.get(key)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        raise StateError(f"{key}: expected an ISO-8601 time, got {raw!r}") from None
    if value.tzinfo is None:
        raise StateError(f"{key}: time {raw!r} has no timezone")
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    raw = data.get(key, False)
    if not isinstance(raw, bool):
        raise StateError(f"{key}: expected true or false, got {raw!r}")
    return raw


def _str(data: Mapping[str, Any], key: str) -> str | None:
    raw = data.get(key)
    if raw is not None and not isinstance(raw, str):
        raise StateError(f"{key}: expected a string or null, got {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class StarfaceApplied:
    """What we last wrote to one STARFACE user, what of it we own, and the observation it came from.

    DND ownership has three cases: `dnd_ours` (on because we set it), `dnd_manual` (on, and not by us:
    protected), neither (off as far as we know). `dnd_user_off` records that the user switched DND off
    by hand while `category` asked for it; we do not switch it on again until the category changes.
    `chat_text` is the text of ours believed shown (None: none of ours). `telephony_active` is True
    while the telephony status we last wrote is ACTIVE. `category` is the Teams category applied; None
    before the first decision, and while the user's Teams state is hidden behind our own session.
    """

    dnd_ours: bool = False
    dnd_manual: bool = False
    dnd_user_off: bool = False
    chat_text: str | None = None
    telephony_active: bool = False
    category: Category | None = None
    sequence_number: str | None = None
    observed_at: datetime | None = None
    dnd_event_at: datetime | None = None  # occurredAt of the last user DND event applied (PBX clock)
    chat_symbol: str | None = None  # the chat presence symbol of ours believed shown (None: none of ours)

    def to_json(self) -> dict[str, Any]:
        return {
            "dnd_ours": self.dnd_ours,
            "dnd_manual": self.dnd_manual,
            "dnd_user_off": self.dnd_user_off,
            "chat_text": self.chat_text,
            "telephony_active": self.telephony_active,
            "category": None if self.category is None else self.category.value,
            "sequence_number": self.sequence_number,
            "observed_at": _iso(self.observed_at),
            "dnd_event_at": _iso(self.dnd_event_at),
            "chat_symbol": self.chat_symbol,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StarfaceApplied:
        raw_category = data.get("category")
        category = None if raw_category is None else _CATEGORIES.get(raw_category)
        if category is None and raw_category is not None:
            raise StateError(f"category: unknown category {raw_category!r}")
        return cls(
            dnd_ours=_bool(data, "dnd_ours"),
            dnd_manual=_bool(data, "dnd_manual"),
            dnd_user_off=_bool(data, "dnd_user_off"),
            chat_text=_str(data, "chat_text"),
            telephony_active=_bool(data, "telephony_active"),
            category=category,
            sequence_number=_str(data, "sequence_number"),
            observed_at=_time(data, "observed_at"),
            dnd_event_at=_time(data, "dnd_event_at"),
            chat_symbol=_str(data, "chat_symbol"),
        )

#: The applied STARFACE state of a user nothing was ever written for (no row yet); immutable, so shared.
NOTHING_APPLIED = StarfaceApplied()


@dataclass(frozen=True, slots=True)
class PresencePair:
    """An availability/activity pair accepted by Graph setPresence (graph-api.md section 2)."""

    availability: str
    activity: str

    def matches(self, availability: str, activity: str) -> bool:
        return self.availability.lower() == availability.lower() and self.activity.lower() == activity.lower()


BUSY_IN_A_CALL = PresencePair("Busy", "InACall")
DND_PRESENTING = PresencePair("DoNotDisturb", "Presenting")
_PAIRS = {(p.availability, p.activity): p for p in (BUSY_IN_A_CALL, DND_PRESENTING)}


def _pair(data: Mapping[str, Any], key: str) -> PresencePair | None:
    raw = data.get(key)
    if raw is None:
        return None
    pair = _PAIRS.get(tuple(raw)) if isinstance(raw, list | tuple) and len(raw) == 2 else None
    if pair is None:
        raise StateError(f"{key}: {raw!r} is not a presence pair this service sets")
    return pair


@dataclass(frozen=True, slots=True)
class TeamsApplied:
    """The Teams presence session we hold (or held) for one user, and the STARFACE call behind it.

    `call_active` is the level fact "the user is on a STARFACE call" from the newest user telephony
    event (`telephony_event_at`, PBX clock). `held` is the pair our session shows, set or refreshed at
    `refreshed_at` and lapsing at `expires_at` unless refreshed. After a clear, `released` and
    `released_at` remember the pair for the echo window (Teams reports with a delay).
    """

    call_active: bool = False
    telephony_event_at: datetime | None = None
    #: The TelephonyState of that event (RINGING, ACTIVE, ...): orders two events of the same millisecond.
    telephony_state: str | None = None
    held: PresencePair | None = None
    held_since: datetime | None = None
    refreshed_at: datetime | None = None
    expires_at: datetime | None = None
    released: PresencePair | None = None
    released_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        def pair(p: PresencePair | None) -> list[str] | None:
            return None if p is None else [p.availability, p.activity]

        return {
            "call_active": self.call_active,
            "telephony_event_at": _iso(self.telephony_event_at),
            "telephony_state": self.telephony_state,
            "held": pair(self.held),
            "held_since": _iso(self.held_since),
            "refreshed_at": _iso(self.refreshed_at),
            "expires_at": _iso(self.expires_at),
            "released": pair(self.released),
            "released_at": _iso(self.released_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TeamsApplied:
        if all(value is None or value is False for value in data.values()):
            return NO_TEAMS_SESSION  # most users, every poll: no session held or remembered, nothing to parse
        return cls(
            call_active=_bool(data, "call_active"),
            telephony_event_at=_time(data, "telephony_event_at"),
            telephony_state=_str(data, "telephony_state"),
            held=_pair(data, "held"),
            held_since=_time(data, "held_since"),
            refreshed_at=_time(data, "refreshed_at"),
            expires_at=_time(data, "expires_at"),
            released=_pair(data, "released"),
            released_at=_time(data, "released_at"),
        )


#: The applied Teams state of a user we hold no session for and never did (or long ago); immutable, so
#: shared by every user without one instead of a new object per user and poll.
NO_TEAMS_SESSION = TeamsApplied()
