"""Presence state of one simulated user: Teams-client sessions, app sessions, the user-preferred state,
status message and out-of-office, aggregated the way Graph documents it (graph-api.md sections 1-2, 9).

Pure and clock-driven: every method takes `now` (virtual epoch seconds) so the simulator's clock can be
advanced to test expiries and fades. The aggregated view is cached until the next time-driven change,
which keeps a 650-id getPresencesByUserId cheap.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

# Section 2: the only pairs setPresence / setUserPreferredPresence accept.
SET_PRESENCE_PAIRS = frozenset(
    {
        ("Available", "Available"),
        ("Busy", "InACall"),
        ("Busy", "InAConferenceCall"),
        ("Away", "Away"),
        ("DoNotDisturb", "Presenting"),
    }
)
PREFERRED_PAIRS = frozenset(
    {
        ("Available", "Available"),
        ("Busy", "Busy"),
        ("DoNotDisturb", "DoNotDisturb"),
        ("BeRightBack", "BeRightBack"),
        ("Away", "Away"),
        ("Offline", "OffWork"),
    }
)
SESSION_MIN_S = 5 * 60
SESSION_MAX_S = 4 * 3600
SESSION_DEFAULT_S = 5 * 60
FADE_S = 5 * 60  # an Available app session fades after 5 min without refresh, then 5 more to Away (S5)

# Section 2 aggregation: DoNotDisturb > Busy > Available > Away; anything else below Away [I].
_RANK = {"DoNotDisturb": 4, "Busy": 3, "Available": 2, "Away": 1}
_OOF_OVERLAY = frozenset({"Available", "Away", "BeRightBack", "Offline"})

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_sequence = itertools.count(1)


def parse_duration(text: str) -> float | None:
    """ISO-8601 duration (PnDTnHnMnS) to seconds; None when malformed."""
    match = _DURATION.match(text or "")
    if not match or text in ("P", "PT") or text.endswith("T"):
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


@dataclass
class AppSession:
    availability: str
    activity: str
    expires_at: float
    last_refresh: float


@dataclass
class TeamsClient:
    """What a signed-in Teams client (desktop, mobile, web) reports as its session."""

    idle: bool = False
    in_call: bool = False
    in_meeting: bool = False
    presenting: bool = False

    def state(self, calendar_meeting: bool) -> tuple[str, str]:
        # Teams activity values (S6); a calendar meeting turns an ongoing call into InAMeeting (section 7).
        if self.presenting:
            return ("DoNotDisturb", "Presenting")
        if self.in_call:
            return ("Busy", "InAMeeting" if calendar_meeting else "InACall")
        if self.in_meeting or calendar_meeting:
            return ("Busy", "InAMeeting")
        if self.idle:
            return ("Away", "Away")
        return ("Available", "Available")


@dataclass
class UserPresence:
    """All presence inputs of one user plus the cached aggregated output."""

    user_id: str
    clients: dict[str, TeamsClient] = field(default_factory=dict)
    app_sessions: dict[str, AppSession] = field(default_factory=dict)
    preferred: tuple[str, str, float] | None = None  # availability, activity, expires_at
    calendar_meeting: bool = False
    out_of_office: bool = False
    oof_message: str | None = None
    status_message: tuple[str, float | None] | None = None  # content, expires_at
    sequence: str = ""
    _last_output: tuple[Any, ...] | None = None
    _cached: dict[str, Any] | None = None
    _valid_until: float = 0.0

    def touch(self) -> None:
        """Mark inputs changed; the next read recomputes (and bumps sequenceNumber if the view changed)."""
        self._cached = None

    def has_app_session(self, session_id: str, now: float) -> bool:
        self._expire(now)
        return session_id in self.app_sessions

    def view(self, now: float) -> dict[str, Any]:
        """The presence resource as Graph returns it for another user (no statusMessage expiry, S10)."""
        if self._cached is not None and now < self._valid_until:
            return self._cached
        self._expire(now)
        availability, activity = self._aggregate(now)
        message = self.status_message[0] if self.status_message else None
        output = (availability, activity, self.out_of_office, self.oof_message, message)
        if output != self._last_output:
            self._last_output = output
            self.sequence = f"A{next(_sequence):010d}"
        status = None
        if message is not None:
            status = {"message": {"content": message, "contentType": "text"}}
        self._cached = {
            "id": self.user_id,
            "availability": availability,
            "activity": activity,
            "statusMessage": status,
            "outOfOfficeSettings": {"message": self.oof_message, "isOutOfOffice": self.out_of_office},
            "sequenceNumber": self.sequence,
        }
        self._valid_until = self._next_change(now)
        return self._cached

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self.app_sessions.items() if s.expires_at <= now]:
            del self.app_sessions[sid]
        if self.preferred and self.preferred[2] <= now:
            self.preferred = None
        if self.status_message and self.status_message[1] is not None and self.status_message[1] <= now:
            self.status_message = None

    def _session_states(self, now: float) -> list[tuple[str, str]]:
        states = [client.state(self.calendar_meeting) for client in self.clients.values()]
        for session in self.app_sessions.values():
            idle_for = now - session.last_refresh
            if session.availability == "Available" and idle_for >= 2 * FADE_S:
                states.append(("Away", "Away"))
            elif session.availability == "Available" and idle_for >= FADE_S:
                states.append(("Available", "AvailableInactive"))
            else:
                states.append((session.availability, session.activity))
        return states

    def _aggregate(self, now: float) -> tuple[str, str]:
        states = self._session_states(now)
        if not states:
            pair = ("Offline", "Offline")  # no session at all (S7); preferred needs a session (S8)
        elif self.preferred:
            pair = (self.preferred[0], self.preferred[1])
        else:
            pair = max(states, key=lambda s: _RANK.get(s[0], 0))
        if self.out_of_office and pair[0] in _OOF_OVERLAY:
            pair = (pair[0], "OutOfOffice")
        return pair

    def _next_change(self, now: float) -> float:
        times = [s.expires_at for s in self.app_sessions.values()]
        for s in self.app_sessions.values():
            if s.availability == "Available":
                times += [s.last_refresh + FADE_S, s.last_refresh + 2 * FADE_S]
        if self.preferred:
            times.append(self.preferred[2])
        if self.status_message and self.status_message[1] is not None:
            times.append(self.status_message[1])
        future = [t for t in times if t > now]
        return min(future) if future else float("inf")
