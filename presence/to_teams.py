"""STARFACE -> Teams: which presence session of ours a user should have, and what a STARFACE event means.

The desired session is a level, recomputed from two facts every time:
- the user is on a STARFACE call (`TeamsApplied.call_active`, from `origin: user` telephony events:
  ACTIVE, and RINGING if the tenant counts it) -> `Busy/InACall` or `DoNotDisturb/Presenting`;
- the tenant opted in to `manual_dnd_to_teams` and the user switched DND on by hand in STARFACE
  (`StarfaceApplied.dnd_manual`) -> `DoNotDisturb/Presenting` (the only DND pair setPresence accepts).

Sessions are set with `SESSION_EXPIRY` (15 min) and refreshed every `REFRESH_INTERVAL` while wanted,
so a dead service can never leave a user busy in Teams for longer than the expiry.

Echoes: events with `origin: integration` (our own DND, chat text and telephony writes, or another
integration) never change the Teams session and never count as a manual DND; read-before-write and
drift repair reconcile ownership instead. So the telephony status we write never comes back as a call.

Order: telephony events are ordered by `occurredAt` against the last telephony event applied, DND
events against the last DND event applied (PBX clock both); an older event changes nothing, and of two
telephony events of the same millisecond the call's end wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from presence.policy import TeamsPresenceMode, TenantPolicy
from presence.state import (
    BUSY_IN_A_CALL,
    DND_PRESENTING,
    EventKind,
    Origin,
    PresencePair,
    StarfaceApplied,
    StarfaceEvent,
    StarfaceReading,
    TeamsApplied,
)

SESSION_EXPIRY = timedelta(minutes=15)  # setPresence accepts PT5M..PT4H (graph-api.md section 2)
REFRESH_INTERVAL = timedelta(minutes=5)  # two missed keep-alives still leave the session standing
# A read-back may only end a call if it was taken this long after the last telephony event: the PBX
# clock and ours differ (the webhook tolerates 300 s), and a read can race a fresh call's event.
READBACK_GRACE = timedelta(minutes=2)

_MODE_PAIRS = {
    TeamsPresenceMode.BUSY_IN_A_CALL: BUSY_IN_A_CALL,
    TeamsPresenceMode.DND_PRESENTING: DND_PRESENTING,
}


class SessionActionKind(StrEnum):
    SET = "set"  # setPresence (new session, or a different pair)
    REFRESH = "refresh"  # setPresence again with the same pair, before it lapses
    CLEAR = "clear"  # clearPresence (404 from Graph means it had lapsed already: fine)
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class TeamsSessionAction:
    """What to do with our Teams session, and both applied states to record (compare-and-set)."""

    kind: SessionActionKind
    pair: PresencePair | None  # for SET / REFRESH
    teams: TeamsApplied
    starface: StarfaceApplied  # changed when a user DND event changed ownership

    @property
    def expiration(self) -> str:
        """ISO-8601 duration for setPresence `expirationDuration`."""
        return f"PT{int(SESSION_EXPIRY.total_seconds() // 60)}M"


def decide_teams_session(
    policy: TenantPolicy,
    event: StarfaceEvent,
    applied_teams: TeamsApplied,
    applied_starface: StarfaceApplied,
    now: datetime,
) -> TeamsSessionAction:
    """The event task's decision: apply one bridge event to the user's level facts, then reconcile.

    Only `origin: user` events carry facts: telephony events set `call_active`, DND events update
    ownership (on: manual, protected; off: the user switched it off). Presence events (chat status) do
    not affect Teams; pass their text to `repair_starface` to re-apply an overwritten chat text.
    """
    teams, starface = applied_teams, applied_starface
    if event.origin is Origin.USER:
        if event.kind is EventKind.TELEPHONY and event.telephony_state is not None:
            in_call = _call_state(policy, event.telephony_state, teams.call_active)
            if not _older(event.occurred_at, teams.telephony_event_at) and not _earlier_of_a_tie(
                    event.telephony_state, event.occurred_at, teams, in_call):
                teams = replace(teams, call_active=in_call, telephony_event_at=event.occurred_at,
                                telephony_state=event.telephony_state)
        elif (
            event.kind is EventKind.DND
            and event.dnd is not None
            # Not "older or the same": a redelivered DND event must not be learned again, because a
            # DND we switched on since would then be taken for the user's and never cleared.
            and (starface.dnd_event_at is None or event.occurred_at > starface.dnd_event_at)
        ):
            starface = _learn_user_dnd(starface, event.dnd, event.occurred_at)
    return _reconcile(policy, teams, starface, now)


def after_failed_change(applied_teams: TeamsApplied, action: TeamsSessionAction,
                        maybe_applied: bool) -> TeamsApplied:
    """What to record when Graph refused ``action`` or its answer was lost. The event's facts (on a call
    since t, or no longer) always count: keep-alive sets a wanted session that is still missing, and an
    older event retried later is recognised as older. A setPresence that timed out or lost its connection
    (``maybe_applied``) may stand in Teams: it is recorded as held, so the hang-up clears it, but never
    refreshed, so the retry and keep-alive send it again."""
    if maybe_applied and action.kind in (SessionActionKind.SET, SessionActionKind.REFRESH):
        return replace(action.teams, refreshed_at=None)
    return replace(applied_teams, call_active=action.teams.call_active,
                   telephony_event_at=action.teams.telephony_event_at,
                   telephony_state=action.teams.telephony_state)


def keep_alive(
    policy: TenantPolicy, applied_teams: TeamsApplied, applied_starface: StarfaceApplied, now: datetime
) -> TeamsSessionAction:
    """Keep-alive task: refresh a wanted session that is due, set a missing one, clear an unwanted one."""
    return _reconcile(policy, applied_teams, applied_starface, now)


def refresh_due_at(applied_teams: TeamsApplied) -> datetime | None:
    """When the keep-alive task must next look at this user (None: no session held). Index this."""
    if applied_teams.held is None or applied_teams.refreshed_at is None:
        return None
    return applied_teams.refreshed_at + REFRESH_INTERVAL


def repair_teams_session(
    policy: TenantPolicy,
    reading: StarfaceReading,
    applied_teams: TeamsApplied,
    applied_starface: StarfaceApplied,
    now: datetime,
) -> TeamsSessionAction:
    """Drift repair: end a call whose end event was lost, or start one whose start event was lost, then
    reconcile the session.

    Only when the last telephony event is older than READBACK_GRACE (the read may race an event). A
    read-back starts a call only while we have not written the telephony status ACTIVE ourselves
    (`applied_starface.telephony_active`): ours would look like a call. The event time is left as it
    is, so any later event of the PBX - the hang-up - still counts. Pass the `applied` of
    `repair_starface` as `applied_starface` so a manual DND found in the same read counts.
    """
    teams = applied_teams
    state = reading.telephony_state
    if state is not None and (teams.telephony_event_at is None
                              or now - teams.telephony_event_at > READBACK_GRACE):
        if teams.call_active and not _call_state(policy, state, True):
            teams = replace(teams, call_active=False)
        elif not teams.call_active and not applied_starface.telephony_active \
                and _call_state(policy, state, False):
            teams = replace(teams, call_active=True)
    return _reconcile(policy, teams, applied_starface, now)


def desired_pair(
    policy: TenantPolicy, applied_teams: TeamsApplied, applied_starface: StarfaceApplied
) -> PresencePair | None:
    """The session pair the user should have now, or None."""
    if not policy.teams_session_enabled:
        return None
    if policy.manual_dnd_to_teams and applied_starface.dnd_manual:
        return DND_PRESENTING
    if applied_teams.call_active:
        return _MODE_PAIRS[policy.teams_presence_mode]
    return None


def _reconcile(
    policy: TenantPolicy, teams: TeamsApplied, starface: StarfaceApplied, now: datetime
) -> TeamsSessionAction:
    desired = desired_pair(policy, teams, starface)
    held = teams.held
    if held is not None and teams.expires_at is not None and now >= teams.expires_at:
        # Graph has already dropped the lapsed session; remember it for the echo window.
        teams = replace(teams, held=None, held_since=None, refreshed_at=None, expires_at=None,
                        released=held, released_at=teams.expires_at)
        held = None
    if desired is None:
        if held is None:
            return TeamsSessionAction(SessionActionKind.NOTHING, None, teams, starface)
        cleared = replace(teams, held=None, held_since=None, refreshed_at=None, expires_at=None,
                          released=held, released_at=now)
        return TeamsSessionAction(SessionActionKind.CLEAR, None, cleared, starface)
    if held != desired:
        started = replace(
            teams, held=desired, held_since=now, refreshed_at=now, expires_at=now + SESSION_EXPIRY
        )
        if held is not None:  # the pair it replaces is still echoed by Teams for a while
            started = replace(started, released=held, released_at=now)
        return TeamsSessionAction(SessionActionKind.SET, desired, started, starface)
    if teams.refreshed_at is None or now - teams.refreshed_at >= REFRESH_INTERVAL:
        refreshed = replace(teams, refreshed_at=now, expires_at=now + SESSION_EXPIRY)
        return TeamsSessionAction(SessionActionKind.REFRESH, desired, refreshed, starface)
    return TeamsSessionAction(SessionActionKind.NOTHING, None, teams, starface)


#: Where a TelephonyState stands in one call: ringing, then talking, then any other state (the end).
_CALL_PHASE = {"RINGING": 0, "ACTIVE": 1}


def _earlier_of_a_tie(state: str, occurred_at: datetime, teams: TeamsApplied, in_call: bool) -> bool:
    """Two telephony events of the same millisecond arrive in an unknown order: the one of the later phase
    of a call stands (ringing < active < ended), so an answer after the ring counts and a call answered
    and ended at once ends - a call that goes on is reported again by the PBX, a session set by mistake is
    cleared by nothing. For a row without the last state (older versions), the end wins."""
    if occurred_at != teams.telephony_event_at:
        return False
    if teams.telephony_state is None:
        return in_call and not teams.call_active
    return _CALL_PHASE.get(state.upper(), 2) <= _CALL_PHASE.get(teams.telephony_state.upper(), 2)


def _call_state(policy: TenantPolicy, telephony_state: str, was_in_call: bool) -> bool:
    """Is the user on a call, given a TelephonyState? RINGING that does not count keeps the old value,
    so a second call ringing in during a call (call waiting) does not end the first one."""
    state = telephony_state.upper()
    if state == "ACTIVE":
        return True
    if state == "RINGING":
        return True if policy.ringing_counts_as_call else was_in_call
    return False  # AVAILABLE, UNAVAILABLE, QUEUE_PAUSE, unknown: not on a call


def _learn_user_dnd(starface: StarfaceApplied, dnd_on: bool, occurred_at: datetime) -> StarfaceApplied:
    # On by hand: protected and never ours. Off by hand: not switched on again while the current Teams
    # category lasts.
    return replace(
        starface, dnd_ours=False, dnd_manual=dnd_on, dnd_user_off=not dnd_on, dnd_event_at=occurred_at
    )


def _older(at: datetime, than: datetime | None) -> bool:
    return than is not None and at < than
