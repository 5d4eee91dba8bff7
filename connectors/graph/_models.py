"""Typed values the Graph connector returns, parsed at the edge (graph-api.md section 1).

Availability and activity are parsed case-insensitively (the wire uses PascalCase, the generated v1.0
metadata camelCase) into the canonical PascalCase spelling; anything unknown becomes "PresenceUnknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
_AVAILABILITY = {v.lower(): v for v in AVAILABILITIES}
_ACTIVITY = {v.lower(): v for v in ACTIVITIES}


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


@dataclass(frozen=True, slots=True)
class Presence:
    """One observation of a user's Teams presence."""

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
        status = item.get("statusMessage") or {}
        message = (status.get("message") or {}).get("content") if isinstance(status, dict) else None
        oof = item.get("outOfOfficeSettings") or {}
        sequence = item.get("sequenceNumber")
        return cls(
            user_id=str(item.get("id", "")).lower(),
            availability=_AVAILABILITY.get(str(item.get("availability") or "").lower(), UNKNOWN),
            activity=_ACTIVITY.get(str(item.get("activity") or "").lower(), UNKNOWN),
            status_message=message or None,
            out_of_office=bool(oof.get("isOutOfOffice")) if isinstance(oof, dict) else False,
            sequence_number=str(sequence) if sequence else None,
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
