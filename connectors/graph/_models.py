"""Typed values the Graph connector returns, parsed at the edge (graph-api.md section 1).

Availability and activity are parsed case-insensitively (the wire uses PascalCase, the generated v1.0
metadata camelCase) into the canonical PascalCase spelling; anything unknown becomes "PresenceUnknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

UNKNOWN = "PresenceUnknown"
AVAILABILITIES = (
    "Available",
    "AvailableIdle",
    "Away",
    "BeRightBack",
    "Busy",
    "BusyIdle",
    "DoNotDisturb",
    "Offline",
    UNKNOWN,
)
ACTIVITIES = (
    "Available",
    "AvailableInactive",
    "Away",
    "BeRightBack",
    "Busy",
    "DoNotDisturb",
    "InACall",
    "InAConferenceCall",
    "Inactive",
    "InAMeeting",
    "Offline",
    "OffWork",
    "OutOfOffice",
    UNKNOWN,
    "Presenting",
    "UrgentInterruptionsOnly",
    "Focusing",
)
#: Canonical spelling by the wire's (PascalCase, as Graph sends it) and by its lower case.
_AVAILABILITY = {v: v for v in AVAILABILITIES} | {v.lower(): v for v in AVAILABILITIES}
_ACTIVITY = {v: v for v in ACTIVITIES} | {v.lower(): v for v in ACTIVITIES}


def _canonical(spellings: dict[str, str], value: Any) -> str:
    """The canonical spelling of an availability or activity in any case; UNKNOWN for anything else."""
    if isinstance(value, str):
        return spellings.get(value) or spellings.get(value.lower(), UNKNOWN)
    return UNKNOWN


def compare_sequence(a: str | None, b: str | None) -> int | None:
    """Order two `sequenceNumber`s of the same user: -1, 0 or 1, or None when either is missing.

    Graph documents sequenceNumber as an opaque, lexicographically sortable version stamp (S3, S4), so
    it is compared as a plain (ordinal, case-sensitive) string; a greater string is a later observation.
    It is only meaningful between observations of the same user. When it is missing, order by the
    time of observation instead.
    """
    if not a or not b:
        return None
    return (a > b) - (a < b)


class Presence(NamedTuple):
    """One observation of a user's Teams presence. A named tuple, not a frozen dataclass: a packed poll
    builds one per user each cycle, and a frozen dataclass's constructor (a ``setattr`` per field) cost
    four times a tuple's."""

    user_id: str
    availability: str
    activity: str
    status_message: str | None = None
    out_of_office: bool = False
    sequence_number: str | None = None

    def is_newer_than(self, other: Presence) -> bool | None:
        """True if this observation is strictly later than `other` (same user), None if unknowable."""
        order = compare_sequence(self.sequence_number, other.sequence_number)
        return None if order is None else order > 0

    @classmethod
    def from_graph(cls, item: dict[str, Any]) -> Presence:
        """Parse one Graph presence resource; tolerates every optional field being absent or null."""
        status = item.get("statusMessage")
        message = (status.get("message") or {}).get("content") if isinstance(status, dict) else None
        oof = item.get("outOfOfficeSettings")
        sequence = item.get("sequenceNumber")
        return cls(
            str(item.get("id", "")).lower(),
            _canonical(_AVAILABILITY, item.get("availability")),
            _canonical(_ACTIVITY, item.get("activity")),
            message or None,
            bool(oof.get("isOutOfOffice")) if isinstance(oof, dict) else False,
            str(sequence) if sequence else None,
        )


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user of the customer's directory, as far as matching to the PBX needs it."""

    id: str
    display_name: str
    mail: str | None
    user_principal_name: str
    proxy_addresses: tuple[str, ...] = ()

    @property
    def smtp_addresses(self) -> tuple[str, ...]:
        """All SMTP addresses (primary and aliases), lower-cased, without the `smtp:` prefix."""
        return tuple(p[5:].lower() for p in self.proxy_addresses if p.lower().startswith("smtp:"))

    @classmethod
    def from_graph(cls, item: dict[str, Any]) -> DirectoryUser:
        return cls(
            id=str(item["id"]).lower(),
            display_name=str(item.get("displayName") or ""),
            mail=item.get("mail") or None,
            user_principal_name=str(item.get("userPrincipalName") or ""),
            proxy_addresses=tuple(item.get("proxyAddresses") or ()),
        )
