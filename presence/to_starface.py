"""Teams -> STARFACE: which DND, chat text and telephony status a user should get, and what to write.

Three entry points share one decision core (`_decide`), so the poll, the update task and drift repair
can never disagree:

1. `plan_starface` (poll task, per user, no I/O): returns a `StarfacePlan` only when the observation
   would change something, judged against the applied state as if STARFACE still showed it.
2. `finalize_starface` (update task): the same decision against the DND (and, with the bridge, chat
   text) read from STARFACE right before writing; returns the exact writes and the new applied state.
3. `repair_starface` (drift repair): re-decides the applied category against a read-back, so a chat
   text the STARFACE app overwrote is re-applied while the category still asks for it.

Ownership rules (issue 11, design.md invariants), as in the STARFACE module:
- Teams leads (default): when the user's Teams category changes, its rule decides the STARFACE DND, also
  over a DND set by hand (`set` claims a manual DND as ours, `clear` clears it). Between Teams changes a
  DND the user switched on or off by hand stays as the user left it: neither the poll nor drift repair
  undoes it. Onboarding is no change: Teams leads from the first decision recorded for a user on, so a
  first look (nothing applied yet) never clears a DND set by hand nor hands on a plan without writes.
- "Respect a DND set by hand" (`respect_manual_dnd`): a DND found on that we did not set is manual: never
  cleared, never claimed; a user who switches our DND off keeps it off until the category changes.
- `clear` and "no text" otherwise remove only a DND / text we set; `leave` never changes DND.
- Telephony is written only when it differs from what we last wrote (or, when read, from what STARFACE
  shows); AVAILABLE only undoes our ACTIVE. While the user is on a real STARFACE call, or the PBX shows
  RINGING / QUEUE_PAUSE / UNAVAILABLE, the telephony status belongs to the PBX and is left alone.
- A switched-off output releases what we own (clears our DND / text, resets our ACTIVE) and then stays
  untouched, so disabling a feature never leaves a user stuck. Without the bridge only DND is written.

Order and echoes: an observation strictly older than the applied one decides nothing; a Teams presence
equal to the session we hold, or held until `ECHO_WINDOW` ago, is our own echo and decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from presence.categories import CALL_CATEGORIES, Category, categorize
from presence.policy import DndAction, TenantPolicy
from presence.state import StarfaceApplied, StarfaceReading, TeamsApplied, TeamsObservation, is_older

# Teams clients poll, so Graph-set presence shows up "a few minutes" late (graph-api.md section 2).
ECHO_WINDOW = timedelta(minutes=5)

TELEPHONY_ACTIVE = "ACTIVE"
TELEPHONY_AVAILABLE = "AVAILABLE"
CHAT_SYMBOL_AVAILABLE = "AVAILABLE"
# Shown telephony states we may write over; RINGING, QUEUE_PAUSE and UNAVAILABLE belong to the PBX.
_TELEPHONY_WE_WRITE = frozenset({None, TELEPHONY_ACTIVE, TELEPHONY_AVAILABLE, "active", "available"})


@dataclass(frozen=True, slots=True)
class StarfacePlan:
    """Desired STARFACE outputs for one user, decided from one Teams observation."""

    category: Category | None  # None: Teams state hidden behind our own session; release what Teams caused
    dnd: DndAction
    chat_text: str | None  # text of ours the category asks for; None = none of ours
    telephony_active: bool | None  # None: leave telephony alone (a STARFACE call owns it now)
    sequence_number: str | None
    observed_at: datetime | None
    #: The audit trail's cause when it is not the Teams category (e.g. "released: tenant disabled").
    cause: str | None = None
    #: A release of everything of ours: also carried out for a tenant that was just disabled.
    release: bool = False
    #: The chat presence symbol the category asks for (None: keep the user's; ours is reset).
    chat_symbol: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Task-argument form (observed values only, no secrets)."""
        return {
            "category": None if self.category is None else self.category.value,
            "dnd": self.dnd.value,
            "chat_text": self.chat_text,
            "telephony_active": self.telephony_active,
            "sequence_number": self.sequence_number,
            "observed_at": None if self.observed_at is None else self.observed_at.isoformat(),
            "cause": self.cause,
            "release": self.release,
            "chat_symbol": self.chat_symbol,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StarfacePlan:
        category, observed = data.get("category"), data.get("observed_at")
        return cls(
            category=None if category is None else Category(category),
            dnd=DndAction(data["dnd"]),
            chat_text=data.get("chat_text"),
            telephony_active=data.get("telephony_active"),
            sequence_number=data.get("sequence_number"),
            observed_at=None if observed is None else datetime.fromisoformat(observed),
            cause=data.get("cause"),
            release=bool(data.get("release", False)),
            chat_symbol=data.get("chat_symbol"),
        )


@dataclass(frozen=True, slots=True)
class StarfaceWrites:
    """Exactly what to write, and the applied state to record (compare-and-set) after writing it."""

    applied: StarfaceApplied
    dnd: bool | None = None  # True: switch on, False: switch off, None: no write
    chat_text: str | None = None  # text to set, "" to clear, None: no write
    telephony_state: str | None = None  # "ACTIVE" | "AVAILABLE" | None: no write
    stale: bool = False  # the plan was older than the applied state: dropped
    #: Chat presence symbol to set, None: no write. Written with `chat_text` (setChatStatus always writes
    #: the message), which then holds the text to keep showing.
    chat_symbol: str | None = None

    @property
    def has_writes(self) -> bool:
        return (self.dnd is not None or self.chat_text is not None or self.telephony_state is not None
                or self.chat_symbol is not None)


def plan_starface(
    policy: TenantPolicy,
    observation: TeamsObservation,
    applied_starface: StarfaceApplied,
    applied_teams: TeamsApplied,
    now: datetime,
    unsettled: bool = False,
) -> StarfacePlan | None:
    """The poll's decision for one user: a plan when STARFACE should change, else None.

    None means one of: the observation is older than the applied one; it is the echo of our own Teams
    session; or every output already matches (as far as the applied state knows). `unsettled`: an earlier
    update stopped after some of its writes (its intent is still on the row), so the applied state may not
    know what STARFACE shows; the plan is then always handed on, and the update task reads and settles it.
    """
    if is_older(
        observation.sequence_number, observation.observed_at,
        applied_starface.sequence_number, applied_starface.observed_at,
    ):
        return None
    held = applied_teams.held
    category: Category | None
    if held is not None and not applied_teams.call_active and held.matches(observation.availability,
                                                                             observation.activity):
        # Our session mirrors a manual STARFACE DND, for as long as the user keeps it: the user's own
        # Teams state is hidden behind it, so release what Teams caused instead of keeping it forever.
        category = None
    elif is_own_echo(observation, applied_teams):
        return None  # hidden behind a call session or its echo window: bounded, keep what Teams said
    else:
        category = categorize(observation.availability, observation.activity, observation.out_of_office)
    plan = _plan_for(
        policy, category, applied_teams.call_active, observation.sequence_number, observation.observed_at
    )
    if unsettled or _outcome(policy, plan, _UNREAD, applied_starface)[1] != _NO_WRITES:
        return plan
    # Teams leads over a manual DND the applied state may not know of (no bridge events): the update task
    # reads the DND before deciding, so a changed category that asks for set/clear is always handed on.
    leads = teams_leads_now(policy, plan, applied_starface)
    return plan if leads and plan.dnd is not DndAction.LEAVE else None


def decided_without_clock(
    observation: TeamsObservation, applied_starface: StarfaceApplied, applied_teams: TeamsApplied
) -> bool:
    """True when `plan_starface`'s answer for these inputs cannot change with the observation time alone,
    so a poll that sees the same presence over the same applied states may reuse it (sync/settled.py).

    The time takes part in two places: ordering by observation time, when the observation or the applied
    state has no sequenceNumber (and something was applied), and the echo window of a released session.
    """
    ordered_by_stamps = (
        observation.sequence_number is not None and applied_starface.sequence_number is not None
    ) or applied_starface.observed_at is None
    echo_window_open = applied_teams.released is not None and applied_teams.released_at is not None
    return ordered_by_stamps and not echo_window_open


def finalize_starface(
    plan: StarfacePlan, starface_now: StarfaceReading, applied_starface: StarfaceApplied, policy: TenantPolicy
) -> StarfaceWrites:
    """The update task's decision: writes for `plan` given STARFACE as read right before writing.

    `starface_now.dnd` should always be read (phoneconfig or getStates): it is how a manual DND is found.
    A plan older than the applied state (a redelivered or overtaken task) gives no writes and `stale`.
    """
    if is_older(
        plan.sequence_number, plan.observed_at,
        applied_starface.sequence_number, applied_starface.observed_at,
    ):
        return StarfaceWrites(applied=applied_starface, stale=True)
    return _decide(policy, plan, starface_now, applied_starface)


def repair_starface(
    policy: TenantPolicy,
    reading: StarfaceReading,
    applied_starface: StarfaceApplied,
    applied_teams: TeamsApplied | None = None,
) -> StarfaceWrites:
    """Drift repair: learn ownership from a read-back and re-apply what the applied category still asks.

    Re-applies an overwritten chat text of ours, and (given `applied_teams`, and no STARFACE call in
    progress) a telephony status the PBX reset. DND is never re-applied here: between Teams changes an
    unexpected DND state is the user's doing and is recorded, not undone.
    """
    call_active = True if applied_teams is None else applied_teams.call_active
    applied = applied_starface
    plan = _plan_for(policy, applied.category, call_active, applied.sequence_number, applied.observed_at)
    return _decide(policy, plan, reading, applied)


def is_own_echo(observation: TeamsObservation, applied_teams: TeamsApplied) -> bool:
    """True if the observed Teams presence is our own session (held, or released within ECHO_WINDOW)."""
    held = applied_teams.held
    if held is not None and held.matches(observation.availability, observation.activity):
        return True
    released = applied_teams.released
    # Judged by when the observation was made, not when it is decided: a late or redelivered read taken
    # while we still held the pair (or shortly after) is our echo however long ago that was.
    return (
        released is not None
        and applied_teams.released_at is not None
        and observation.observed_at - applied_teams.released_at < ECHO_WINDOW
        and released.matches(observation.availability, observation.activity)
    )


def teams_leads_now(policy: TenantPolicy, plan: StarfacePlan, applied: StarfaceApplied) -> bool:
    """True when this plan's rule decides the DND also over a manual one: Teams leads (the tenant does not
    respect a manual DND), DND output is on, and the plan is a Teams category change (not a release, not
    the first look at a user)."""
    return (
        not policy.respect_manual_dnd
        and policy.set_dnd
        and plan.category is not None
        and not plan.release
        and applied.observed_at is not None
        and plan.category != applied.category
    )


_UNREAD = StarfaceReading()


def _plan_for(
    policy: TenantPolicy, category: Category | None, call_active: bool,
    sequence_number: str | None, observed_at: datetime | None,
) -> StarfacePlan:
    telephony: bool | None = None  # during a real STARFACE call the PBX owns the telephony status
    if category is None:
        if not call_active:
            telephony = False
        return StarfacePlan(None, DndAction.LEAVE, None, telephony, sequence_number, observed_at)
    rule = policy.rules[category]
    if not call_active:
        telephony = policy.set_telephony and category in CALL_CATEGORIES
    symbol = rule.chat_symbol.value if policy.set_chat_text and rule.chat_symbol is not None else None
    return StarfacePlan(
        category=category,
        dnd=rule.dnd if policy.set_dnd else DndAction.CLEAR,  # switched off: release ours only
        chat_text=rule.chat_text if policy.set_chat_text else None,
        chat_symbol=symbol,
        telephony_active=telephony,
        sequence_number=sequence_number,
        observed_at=observed_at,
    )


#: The writes part of `_outcome`: (dnd, chat text, chat symbol, telephony state), None = leave as is.
_Writes = tuple[bool | None, str | None, str | None, str | None]
_NO_WRITES: _Writes = (None, None, None, None)
#: The applied part of `_outcome`: (dnd ours, dnd manual, dnd user off, chat text, chat symbol, telephony).
_Learned = tuple[bool, bool, bool, str | None, str | None, bool]


def _decide(
    policy: TenantPolicy, plan: StarfacePlan, reading: StarfaceReading, applied: StarfaceApplied
) -> StarfaceWrites:
    """The one decision core (`_outcome`) as the new applied state and the writes."""
    learned, writes = _outcome(policy, plan, reading, applied)
    ours, manual, user_off, chat, symbol, telephony = learned
    dnd_write, chat_write, symbol_write, telephony_write = writes
    new = StarfaceApplied(
        dnd_ours=ours,
        dnd_manual=manual,
        dnd_user_off=user_off,
        chat_text=chat,
        telephony_active=telephony,
        category=plan.category,
        sequence_number=plan.sequence_number,
        observed_at=plan.observed_at,
        dnd_event_at=applied.dnd_event_at,
        chat_symbol=symbol,
    )
    return StarfaceWrites(applied=new, dnd=dnd_write, chat_text=chat_write, telephony_state=telephony_write,
                          chat_symbol=symbol_write)


def _outcome(
    policy: TenantPolicy, plan: StarfacePlan, reading: StarfaceReading, applied: StarfaceApplied
) -> tuple[_Learned, _Writes]:
    """The one decision core, as plain tuples: the poll asks it for every user and cycle whether anything
    is to be written, and most answers are no. Unread fields of `reading` are taken to be as the applied
    state says."""
    ours, manual, user_off = applied.dnd_ours, applied.dnd_manual, applied.dnd_user_off
    dnd_on = reading.dnd if reading.dnd is not None else (ours or manual)
    # 1. Learn ownership from what STARFACE shows.
    if dnd_on:
        manual = manual or not ours
    elif ours or manual:
        ours = manual = False
        user_off = True  # switched off, and not by us
    if plan.category != applied.category:
        user_off = False
    # 2. DND.
    leads = teams_leads_now(policy, plan, applied)
    dnd_write: bool | None = None
    if plan.dnd is DndAction.SET:
        if dnd_on:
            if leads and manual:
                ours, manual = True, False  # Teams leads: the DND now follows Teams
        elif not user_off:
            dnd_write, ours, user_off = True, True, False
    elif plan.dnd is DndAction.CLEAR and dnd_on and (ours or (leads and manual)):
        dnd_write, ours, manual = False, False, False
    # 3. Chat text and telephony: only reachable through the bridge.
    chat, chat_write = applied.chat_text, None
    symbol, symbol_write = applied.chat_symbol, None
    telephony, telephony_write = applied.telephony_active, None
    if policy.has_bridge:
        shown = reading.chat_text if reading.chat_text is not None else (applied.chat_text or "")
        if plan.chat_text is not None:
            if shown != plan.chat_text:
                chat_write = plan.chat_text
            chat = plan.chat_text
        else:
            if chat is not None and shown == chat:
                chat_write = ""
            chat = None  # gone, or replaced by someone else's text: no longer ours either way
        shown_symbol = reading.chat_symbol if reading.chat_symbol is not None else applied.chat_symbol
        if plan.chat_symbol is not None:
            if shown_symbol != plan.chat_symbol:
                symbol_write = plan.chat_symbol
            symbol = plan.chat_symbol
        else:
            if symbol is not None and shown_symbol == symbol:
                symbol_write = CHAT_SYMBOL_AVAILABLE  # only ever undo our own symbol
            symbol = None
        if symbol_write is not None and chat_write is None:
            chat_write = shown  # setChatStatus always writes the message: keep the text that is shown
        shown_state = reading.telephony_state
        if plan.telephony_active is not None and shown_state in _TELEPHONY_WE_WRITE:
            shown_active = telephony if shown_state is None else shown_state.upper() == TELEPHONY_ACTIVE
            if plan.telephony_active and not shown_active:
                telephony_write = TELEPHONY_ACTIVE
            elif not plan.telephony_active and telephony and shown_active:
                telephony_write = TELEPHONY_AVAILABLE  # only ever undo our own ACTIVE
            telephony = plan.telephony_active
    learned: _Learned = (ours, manual, user_off, chat, symbol, telephony)
    return learned, (dnd_write, chat_write, symbol_write, telephony_write)
