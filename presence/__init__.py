"""The pure presence decision engine: Teams presence <-> STARFACE DND, chat text, telephony, Teams session.

No I/O, no clock, no randomness: every function takes what was observed, what was applied before, the
tenant policy and `now`, and returns a decision plus the applied state to record. Workers load, call
one of these, write, and store the new applied state with compare-and-set.

Modules: `categories` (Graph presence -> rule-table category), `policy` (options, rule table),
`state` (observations, events, applied states with JSON), `to_starface` (Teams -> STARFACE),
`to_teams` (STARFACE -> Teams session).
"""

from presence.categories import CALL_CATEGORIES, Category, categorize
from presence.policy import (
    DEFAULT_RULES,
    ChatSymbol,
    DndAction,
    PolicyError,
    Rule,
    TeamsPresenceMode,
    TenantPolicy,
)
from presence.state import (
    BUSY_IN_A_CALL,
    DND_PRESENTING,
    NO_TEAMS_SESSION,
    NOTHING_APPLIED,
    EventKind,
    Origin,
    PresencePair,
    StarfaceApplied,
    StarfaceEvent,
    StarfaceReading,
    StateError,
    TeamsApplied,
    TeamsObservation,
    is_older,
)
from presence.to_starface import (
    ECHO_WINDOW,
    StarfacePlan,
    StarfaceWrites,
    decided_without_clock,
    finalize_starface,
    is_own_echo,
    plan_starface,
    repair_starface,
    teams_leads_now,
)
from presence.to_teams import (
    REFRESH_INTERVAL,
    SESSION_EXPIRY,
    SessionActionKind,
    TeamsSessionAction,
    after_failed_change,
    decide_teams_session,
    desired_pair,
    keep_alive,
    refresh_due_at,
    repair_teams_session,
)

__all__ = [
    "BUSY_IN_A_CALL",
    "CALL_CATEGORIES",
    "ChatSymbol",
    "DEFAULT_RULES",
    "DND_PRESENTING",
    "ECHO_WINDOW",
    "NO_TEAMS_SESSION",
    "NOTHING_APPLIED",
    "REFRESH_INTERVAL",
    "SESSION_EXPIRY",
    "Category",
    "DndAction",
    "EventKind",
    "Origin",
    "PolicyError",
    "PresencePair",
    "Rule",
    "SessionActionKind",
    "StarfaceApplied",
    "StarfaceEvent",
    "StarfacePlan",
    "StarfaceReading",
    "StarfaceWrites",
    "StateError",
    "TeamsApplied",
    "TeamsObservation",
    "TeamsPresenceMode",
    "TeamsSessionAction",
    "TenantPolicy",
    "after_failed_change",
    "categorize",
    "decide_teams_session",
    "decided_without_clock",
    "desired_pair",
    "finalize_starface",
    "is_older",
    "is_own_echo",
    "keep_alive",
    "plan_starface",
    "refresh_due_at",
    "repair_starface",
    "repair_teams_session",
    "teams_leads_now",
]
