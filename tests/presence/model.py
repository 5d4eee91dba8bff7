"""A small model of both systems, driven through the real engine (nothing of ours is replaced).

Teams: the user's own client state, a manual (preferred) state, out of office, and our app session;
aggregated as graph-api.md section 2 says (preferred > sessions; DoNotDisturb > Busy > Available > Away;
on a tie our session shows, the harder case for echo suppression). `sequenceNumber` is a zero-padded
counter bumped whenever the presence state changes (graph-api.md section 9).

STARFACE: DND with the truth of who switched it on (`dnd_by_hand`), the chat text, the telephony status
shown, and the bridge events each change emits (`origin` user or integration, starface-bridge.md).
A tier-1 tenant (no bridge) gets no events and no chat/telephony reads.

`World` plays the service: poll -> plan -> read -> finalize -> write -> record, event -> decide -> Graph,
keep-alive and drift repair, exactly as the workers will. Every write is logged, and overriding a DND the
user set by hand (clearing one switched on, or switching on one switched off) is recorded as a violation
unless the tenant lets Teams lead and the write comes from a Teams status change (issue 11).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from presence import (
    EventKind,
    Origin,
    PresencePair,
    SessionActionKind,
    StarfaceApplied,
    StarfaceEvent,
    StarfaceReading,
    StarfaceWrites,
    TeamsApplied,
    TeamsObservation,
    TeamsSessionAction,
    TenantPolicy,
    decide_teams_session,
    finalize_starface,
    keep_alive,
    plan_starface,
    repair_starface,
    repair_teams_session,
    teams_leads_now,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# The user's own Teams client states (name -> Graph pair).
CLIENT_STATES: dict[str, tuple[str, str]] = {
    "available": ("Available", "Available"),
    "away": ("Away", "Away"),
    "busy": ("Busy", "Busy"),
    "call": ("Busy", "InACall"),
    "conference": ("Busy", "InAConferenceCall"),
    "meeting": ("Busy", "InAMeeting"),
    "presenting": ("DoNotDisturb", "Presenting"),
    "offline": ("Offline", "Offline"),
}
# Manual Teams states (setUserPreferredPresence pairs, graph-api.md section 2).
PREFERRED_STATES: dict[str, tuple[str, str]] = {
    "dnd": ("DoNotDisturb", "DoNotDisturb"),
    "busy": ("Busy", "Busy"),
    "brb": ("BeRightBack", "BeRightBack"),
    "away": ("Away", "Away"),
    "appear_offline": ("Offline", "OffWork"),
}
_RANK = {"donotdisturb": 4, "busy": 3, "available": 2, "away": 1}


@dataclass
class TeamsModel:
    client: str = "available"
    preferred: str | None = None
    out_of_office: bool = False
    app_session: PresencePair | None = None
    app_expires_at: datetime | None = None
    sequence: int = 1
    echo_sequences: set[str] = field(default_factory=set)  # stamps of reads that showed our session
    _last: tuple[object, ...] | None = None

    def aggregate(self, now: datetime) -> tuple[str, str]:
        if self.app_expires_at is not None and now >= self.app_expires_at:
            self.app_session = self.app_expires_at = None
        if self.preferred is not None:
            return PREFERRED_STATES[self.preferred]
        mine = CLIENT_STATES[self.client]
        if self.app_session is None:
            return mine
        ours = (self.app_session.availability, self.app_session.activity)
        return ours if _RANK.get(ours[0].lower(), 0) >= _RANK.get(mine[0].lower(), 0) else mine

    def observe(self, now: datetime) -> TeamsObservation:
        availability, activity = self.aggregate(now)
        # Bumped on every change of the user's presence state, sessions included (graph-api.md section 9).
        current = (availability, activity, self.out_of_office, self.client, self.preferred, self.app_session)
        if current != self._last:
            self.sequence += 1
            self._last = current
        stamp = f"{self.sequence:010d}"
        if self.app_session is not None and self.app_session.matches(availability, activity):
            self.echo_sequences.add(stamp)
        return TeamsObservation(availability, activity, self.out_of_office, stamp, now)


@dataclass
class StarfaceModel:
    has_bridge: bool
    dnd: bool = False
    dnd_by_hand: bool = False
    dnd_off_by_hand: bool = False  # the user switched the DND off (the last DND change was the user's)
    chat_text: str = ""
    chat_symbol: str = "AVAILABLE"  # the chat presence symbol shown
    telephony: str = "AVAILABLE"  # what the STARFACE app shows
    real_call: str = "AVAILABLE"  # the PBX's own telephony state for real calls
    events: list[StarfaceEvent] = field(default_factory=list)

    def emit(self, event: StarfaceEvent) -> None:
        if self.has_bridge:
            self.events.append(event)

    def reading(self) -> StarfaceReading:
        if not self.has_bridge:
            return StarfaceReading(dnd=self.dnd)  # tier 1: phoneconfig only
        return StarfaceReading(dnd=self.dnd, chat_text=self.chat_text, telephony_state=self.telephony,
                               chat_symbol=self.chat_symbol)


@dataclass
class World:
    policy: TenantPolicy
    now: datetime = T0
    teams: TeamsModel = field(default_factory=TeamsModel)
    starface: StarfaceModel = field(init=False)
    applied_starface: StarfaceApplied = field(default_factory=StarfaceApplied)
    applied_teams: TeamsApplied = field(default_factory=TeamsApplied)
    observations: list[TeamsObservation] = field(default_factory=list)
    delivered_events: list[StarfaceEvent] = field(default_factory=list)
    writes: list[tuple[str, object]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.starface = StarfaceModel(has_bridge=self.policy.has_bridge)

    # --- time -----------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # --- things people do -------------------------------------------------------------------------
    def teams_client(self, state: str) -> None:
        self.teams.client = state
        self.advance(1)

    def teams_preferred(self, state: str | None) -> None:
        self.teams.preferred = state
        self.advance(1)

    def teams_out_of_office(self, on: bool) -> None:
        self.teams.out_of_office = on
        self.advance(1)

    def starface_call(self, state: str, then_s: float = 1) -> None:
        """A real STARFACE call changes state (RINGING / ACTIVE / AVAILABLE); the next thing happens
        ``then_s`` later (0: within the same millisecond)."""
        self.starface.real_call = self.starface.telephony = state
        self.starface.emit(self._event(EventKind.TELEPHONY, Origin.USER, telephony_state=state))
        self.advance(then_s)

    def starface_user_dnd(self, on: bool) -> None:
        """The user presses DND in STARFACE; the event (if any) is handled at once, like a webhook.
        DND is a toggle: asking for the state it is already in changes nothing."""
        if self.starface.dnd == on:
            return
        self.starface.dnd = self.starface.dnd_by_hand = on
        self.starface.dnd_off_by_hand = not on
        event = self._event(EventKind.DND, Origin.USER, dnd=on)
        if self.policy.has_bridge:
            self.deliver_event(event)
        else:
            self.drift_repair()  # tier 1: the periodic phoneconfig read is how we learn it
        self.advance(1)

    def ucc_overwrites_chat(self, text: str) -> None:
        """The STARFACE app writes its own chat status: text and symbol (AVAILABLE)."""
        self.starface.chat_text, self.starface.chat_symbol = text, "AVAILABLE"
        self.starface.emit(
            self._event(EventKind.PRESENCE, Origin.USER, chat_text=text, chat_presence="AVAILABLE"))
        self.advance(1)

    # --- the service ------------------------------------------------------------------------------
    def poll(self) -> int:
        observation = self.teams.observe(self.now)
        self.observations.append(observation)
        return self.deliver_observation(observation)

    def deliver_observation(self, observation: TeamsObservation) -> int:
        """Poll task + update task for one observation; returns the number of fields written."""
        plan = plan_starface(self.policy, observation, self.applied_starface, self.applied_teams, self.now)
        if plan is None:
            return 0
        leads = teams_leads_now(self.policy, plan, self.applied_starface)
        changed = plan.category is not None and plan.category != self.applied_starface.category
        writes = finalize_starface(plan, self.starface.reading(), self.applied_starface, self.policy)
        if observation.sequence_number in self.teams.echo_sequences and (
            writes.dnd or writes.chat_text or writes.telephony_state == "ACTIVE"
        ):
            self.violations.append(f"our own Teams session came back as STARFACE state {writes}")
        return self._write_starface(writes, teams_leads=leads, category_changed=changed)

    def deliver_event(self, event: StarfaceEvent) -> SessionActionKind:
        self.delivered_events.append(event)
        action = decide_teams_session(self.policy, event, self.applied_teams, self.applied_starface, self.now)
        return self._apply_session(action)

    def deliver_pending_events(self) -> None:
        while self.starface.events:
            self.deliver_event(self.starface.events.pop(0))

    def keep_alive(self) -> SessionActionKind:
        action = keep_alive(self.policy, self.applied_teams, self.applied_starface, self.now)
        return self._apply_session(action)

    def drift_repair(self) -> int:
        reading = self.starface.reading()
        written = self._write_starface(
            repair_starface(self.policy, reading, self.applied_starface, self.applied_teams)
        )
        self._apply_session(
            repair_teams_session(self.policy, reading, self.applied_teams, self.applied_starface, self.now)
        )
        return written

    def sync(self) -> int:
        """One full cycle as the workers run it: events, poll + apply, keep-alive."""
        self.deliver_pending_events()
        written = self.poll()
        self.deliver_pending_events()
        self.keep_alive()
        return written

    # --- writing ----------------------------------------------------------------------------------
    def _write_starface(self, writes: StarfaceWrites, teams_leads: bool = False,
                        category_changed: bool = False) -> int:
        """`teams_leads`: the writes come from a Teams status change that may override a manual DND;
        `category_changed`: from a Teams status change (which may ask again for a DND switched off)."""
        sf = self.starface
        count = 0
        if writes.dnd is not None:
            if not writes.dnd and sf.dnd_by_hand and not teams_leads:
                self.violations.append(f"cleared a manual DND at {self.now}")
            if writes.dnd and sf.dnd_off_by_hand and not category_changed:
                self.violations.append(f"switched on a DND the user had switched off at {self.now}")
            if teams_leads and self.policy.respect_manual_dnd:
                self.violations.append("Teams led although the tenant respects a manual DND")
            sf.dnd, sf.dnd_by_hand, sf.dnd_off_by_hand = writes.dnd, False, False
            sf.emit(self._event(EventKind.DND, Origin.INTEGRATION, dnd=writes.dnd))
            count += 1
        if writes.chat_text is not None or writes.chat_symbol is not None:
            assert writes.chat_text is not None, "setChatStatus always writes the message"
            if writes.chat_text != sf.chat_text:
                count += 1
            sf.chat_text = writes.chat_text
            if writes.chat_symbol is not None:
                sf.chat_symbol = writes.chat_symbol
                count += 1
            sf.emit(self._event(EventKind.PRESENCE, Origin.INTEGRATION, chat_text=writes.chat_text,
                                chat_presence=writes.chat_symbol))
        if writes.telephony_state is not None:
            sf.telephony = writes.telephony_state
            sf.emit(
                self._event(EventKind.TELEPHONY, Origin.INTEGRATION, telephony_state=writes.telephony_state)
            )
            count += 1
        for name in ("dnd", "chat_text", "telephony_state", "chat_symbol"):
            if getattr(writes, name) is not None:
                self.writes.append((name, getattr(writes, name)))
        self.applied_starface = writes.applied
        return count

    def _apply_session(self, action: TeamsSessionAction) -> SessionActionKind:
        if action.kind in (SessionActionKind.SET, SessionActionKind.REFRESH):
            assert action.pair is not None
            self.teams.app_session = action.pair
            self.teams.app_expires_at = self.now + timedelta(minutes=15)
            self.writes.append(("teams", action.kind.value))
        elif action.kind is SessionActionKind.CLEAR:
            self.teams.app_session = self.teams.app_expires_at = None
            self.writes.append(("teams", action.kind.value))
        self.applied_teams, self.applied_starface = action.teams, action.starface
        return action.kind

    def _event(self, kind: EventKind, origin: Origin, **fields: object) -> StarfaceEvent:
        return StarfaceEvent(kind=kind, origin=origin, occurred_at=self.now, **fields)  # type: ignore[arg-type]
