"""The demo's scripted office hour: who does what at which minute, and what the system must then show.

``office_hour(seed, users)`` returns the same steps for the same seed and user count. Each step is an
action on the simulators (a Teams client, a STARFACE phone, the STARFACE app, Graph throttling) or on
the system (drift repair, keep-alive), plus expectations that the runner checks by polling with a
timeout. Minutes are scripted minutes; the runner compresses the hour.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from demo.stack import DemoStack

CALL_TEXT = "On a call in MS Teams"
MEETING_TEXT = "In a Teams meeting"
DND_TEXT = "Do not disturb (MS Teams)"
OOF_TEXT = "Out of office"
THROTTLE_RETRY_AFTER_S = 1.5
THROTTLE_BURST = 2
NO_ECHO_WINDOW_S = 2.5  # two and a half poll cycles in which our own session must not come back as DND
MIN_USERS = 12  # the featured roles plus a small meeting

#: An expectation's verdict on one look: True held, None not yet, False broken (fails at once).
Verdict = tuple[bool | None, str]


class Probe:
    """What expectations look at, read over HTTP from the simulators; cached for one round of checks."""

    def __init__(self, demo: DemoStack) -> None:
        self.demo = demo
        self._pbx: dict[int, dict[str, Any]] = {}
        self._teams: dict[int, dict[str, Any]] = {}

    def new_round(self) -> None:
        self._pbx.clear()
        self._teams.clear()

    def pbx(self, user: int) -> dict[str, Any]:
        """{dnd, chatPresence, chatPresenceMessage, telephonyState, ...} of the STARFACE user."""
        if user not in self._pbx:
            self._pbx[user] = self.demo.s.user(user)
        return self._pbx[user]

    def teams(self, user: int) -> dict[str, Any]:
        """The user's aggregated Teams presence (availability, activity, outOfOfficeSettings, ...)."""
        if user not in self._teams:
            self._teams[user] = self.demo.s.presence(user)
        return self._teams[user]

    def graph_polls(self, since_seq: int) -> list[dict[str, Any]]:
        entries = self.demo.s.ms.requests("getPresencesByUserId", since=since_seq)["entries"]
        return [e for e in entries if not e.get("batch")]


Check = Callable[[Probe], Verdict]


@dataclass(frozen=True)
class Expectation:
    """``eventually``: must hold within ``timeout_s``. ``throughout``: must never break for ``timeout_s``."""

    what: str
    check: Check
    timeout_s: float = 6.0
    kind: Literal["eventually", "throughout"] = "eventually"


@dataclass(frozen=True)
class Step:
    """One scripted event. It waits for the earlier expectations of ``users`` (so a call is not ended
    before its start was checked); ``barrier`` steps wait for every earlier expectation."""

    minute: float
    text: str
    act: Callable[[DemoStack], None]
    users: tuple[int, ...] = ()
    expect: tuple[Expectation, ...] = ()
    barrier: bool = False


# --- checks ---------------------------------------------------------------------------------------------
def _describe_pbx(state: dict[str, Any]) -> str:
    return (f"DND {'on' if state['dnd'] else 'off'}, chat text {state['chatPresenceMessage']!r}, "
            f"telephony {state['telephonyState']}")


def starface_is(user: int, *, dnd: bool, text: str) -> Check:
    def check(probe: Probe) -> Verdict:
        state = probe.pbx(user)
        return (state["dnd"] is dnd and state["chatPresenceMessage"] == text) or None, _describe_pbx(state)

    return check


def teams_is(user: int, availability: str, activity: str) -> Check:
    def check(probe: Probe) -> Verdict:
        presence = probe.teams(user)
        seen = (presence["availability"], presence["activity"])
        return seen == (availability, activity) or None, f"Teams {seen[0]}/{seen[1]}"

    return check


def dnd_stays_off(user: int) -> Check:
    def check(probe: Probe) -> Verdict:
        state = probe.pbx(user)
        return (not state["dnd"]) or False, _describe_pbx(state)

    return check


def _sa(user: int, *, dnd: bool, text: str) -> str:
    return f"user {user}: STARFACE DND {'on' if dnd else 'off'}" + (f" + {text!r}" if text else ", no text")


def expect_starface(user: int, *, dnd: bool, text: str, timeout_s: float = 6.0,
                    note: str = "") -> Expectation:
    return Expectation(_sa(user, dnd=dnd, text=text) + note, starface_is(user, dnd=dnd, text=text), timeout_s)


# --- throttling -----------------------------------------------------------------------------------------
@dataclass
class _Burst:
    """The Graph log position when the burst was injected (filled in by the step's action)."""

    since_seq: int = 0


def _inject_burst(burst: _Burst) -> Callable[[DemoStack], None]:
    def act(demo: DemoStack) -> None:
        burst.since_seq = demo.s.ms.requests()["total"]
        demo.s.ms.add_fault("getPresencesByUserId", 429, retry_after=THROTTLE_RETRY_AFTER_S,
                            count=THROTTLE_BURST)

    return act


def retry_after_respected(burst: _Burst) -> Check:
    """Every presence poll after a 429 came at least Retry-After later, and a poll succeeded after."""

    def check(probe: Probe) -> Verdict:
        polls = probe.graph_polls(burst.since_seq)
        throttled = [i for i, e in enumerate(polls) if e["status"] == 429]
        for i in throttled:
            if i + 1 < len(polls):
                gap = polls[i + 1]["time"] - polls[i]["time"]
                if gap < THROTTLE_RETRY_AFTER_S:
                    return False, f"a poll {gap:.3f} s after a 429 with Retry-After {THROTTLE_RETRY_AFTER_S}"
        gaps = [polls[i + 1]["time"] - polls[i]["time"] for i in throttled if i + 1 < len(polls)]
        seen = f"{len(throttled)} x 429, next polls after " + ", ".join(f"{g:.2f} s" for g in gaps)
        done = len(throttled) == THROTTLE_BURST and bool(throttled) and throttled[-1] + 1 < len(polls) \
            and polls[throttled[-1] + 1]["status"] == 200
        return done or None, seen

    return check


# --- the hour -------------------------------------------------------------------------------------------
def _teams(user: int, action: str, **extra: Any) -> Callable[[DemoStack], None]:
    return lambda demo: demo.s.teams(user, action, **extra)


def _each(*acts: Callable[[DemoStack], None]) -> Callable[[DemoStack], None]:
    def act(demo: DemoStack) -> None:
        for one in acts:
            one(demo)

    return act


def _sign_in_everyone(users: int) -> Callable[[DemoStack], None]:
    return _each(*(_teams(i, "sign_in") for i in range(users)))


def _pbx(method: str, user: int, *args: Any) -> Callable[[DemoStack], None]:
    return lambda demo: getattr(demo.s.pbx, method)(demo.s.seeds.login(user), *args)


@dataclass
class _Roles:
    caller: int
    meeting: int
    calendar: int
    manual: int
    phone: int
    away: int
    throttled: int
    focus: int
    team: list[int] = field(default_factory=list)
    background: list[int] = field(default_factory=list)


def _roles(rng: random.Random, users: int) -> _Roles:
    picked = rng.sample(range(users), users)
    roles = _Roles(*picked[:8])
    roles.team = sorted(picked[8:12])
    roles.background = picked[12:12 + max(2, users // 10)]
    return roles


def _featured_steps(r: _Roles) -> list[Step]:
    burst = _Burst()
    no_echo = Expectation(f"user {r.phone}: no echo - STARFACE DND stays off while our Teams session shows",
                          dnd_stays_off(r.phone), timeout_s=NO_ECHO_WINDOW_S, kind="throughout")
    return [
        Step(2, f"user {r.manual} switches DND on by hand in STARFACE",
             _pbx("toggle_dnd_by_hand", r.manual, True), (r.manual,)),
        Step(3, f"user {r.caller} starts a Teams call", _teams(r.caller, "call_start"), (r.caller,),
             (expect_starface(r.caller, dnd=True, text=CALL_TEXT),)),
        Step(5, f"user {r.meeting} joins a Teams meeting", _teams(r.meeting, "meeting_start"), (r.meeting,),
             (expect_starface(r.meeting, dnd=True, text=MEETING_TEXT),)),
        Step(6, f"user {r.manual} starts a Teams call (their own DND is on)", _teams(r.manual, "call_start"),
             (r.manual,), (expect_starface(r.manual, dnd=True, text=CALL_TEXT),)),
        Step(8, f"user {r.calendar} starts a Teams call", _teams(r.calendar, "call_start"), (r.calendar,),
             (expect_starface(r.calendar, dnd=True, text=CALL_TEXT),)),
        Step(10, f"user {r.calendar}: a calendar meeting begins during the call",
             _teams(r.calendar, "calendar_start"), (r.calendar,),
             (expect_starface(r.calendar, dnd=True, text=MEETING_TEXT, note=" (call became a meeting)"),)),
        Step(12, f"user {r.caller} ends the Teams call", _teams(r.caller, "call_end"), (r.caller,),
             (expect_starface(r.caller, dnd=False, text=""),)),
        Step(14, f"user {r.focus} sets Teams to 'Do not disturb'",
             _teams(r.focus, "status_set", availability="DoNotDisturb", activity="DoNotDisturb"), (r.focus,),
             (expect_starface(r.focus, dnd=True, text=DND_TEXT),)),
        Step(15, f"user {r.meeting}: the STARFACE app overwrites the chat text",
             _pbx("app_overwrites_chat", r.meeting, "AWAY", ""), (r.meeting,),
             (expect_starface(r.meeting, dnd=True, text=MEETING_TEXT,
                              note=" (re-applied as soon as the bridge reports the overwrite)"),)),
        Step(16, f"user {r.manual} ends the Teams call", _teams(r.manual, "call_end"), (r.manual,),
             (expect_starface(r.manual, dnd=False, text="",
                              note=" (Teams leads, as in the STARFACE module: the status change decides)"),)),
        Step(18, f"user {r.calendar}: the calendar meeting and the call end",
             _each(_teams(r.calendar, "calendar_end"), _teams(r.calendar, "call_end")), (r.calendar,),
             (expect_starface(r.calendar, dnd=False, text=""),)),
        Step(20, "drift repair runs (reads STARFACE back)", lambda demo: demo.drift_repair(), (r.meeting,),
             (expect_starface(r.meeting, dnd=True, text=MEETING_TEXT,
                              note=" (nothing left to repair)"),)),
        Step(22, f"user {r.phone} answers a call on the STARFACE phone",
             _each(_pbx("ring", r.phone), _pbx("answer", r.phone)), (r.phone,),
             (Expectation(f"user {r.phone}: Teams DoNotDisturb/Presenting (our session)",
                          teams_is(r.phone, "DoNotDisturb", "Presenting")), no_echo)),
        Step(25, "keep-alive runs (refreshes Teams sessions of calls in progress)",
             lambda demo: demo.keep_alive(), (r.phone,),
             (Expectation(f"user {r.phone}: Teams still DoNotDisturb/Presenting after keep-alive",
                          teams_is(r.phone, "DoNotDisturb", "Presenting")),)),
        Step(27, f"user {r.phone} hangs up the STARFACE call", _pbx("hang_up", r.phone), (r.phone,),
             (Expectation(f"user {r.phone}: Teams back to Available (session cleared)",
                          teams_is(r.phone, "Available", "Available")),)),
        Step(28, f"user {r.focus} clears the Teams status", _teams(r.focus, "status_clear"), (r.focus,),
             (expect_starface(r.focus, dnd=False, text=""),)),
        Step(30, f"team meeting starts: users {', '.join(map(str, r.team))}",
             _each(*(_teams(u, "meeting_start") for u in r.team)), tuple(r.team),
             tuple(expect_starface(u, dnd=True, text=MEETING_TEXT) for u in r.team)),
        Step(35, f"user {r.away} goes out of office", _teams(r.away, "oof_on", message="Back on Monday"),
             (r.away,), (expect_starface(r.away, dnd=False, text=OOF_TEXT),)),
        Step(38, f"user {r.meeting} leaves the Teams meeting", _teams(r.meeting, "meeting_end"), (r.meeting,),
             (expect_starface(r.meeting, dnd=False, text=""),)),
        Step(42, f"Graph throttles: {THROTTLE_BURST} x 429 with Retry-After {THROTTLE_RETRY_AFTER_S} s",
             _inject_burst(burst), (),
             (Expectation("no Graph presence request before Retry-After during the burst",
                          retry_after_respected(burst), timeout_s=15.0),)),
        Step(42.5, f"user {r.throttled} starts a Teams call during the burst",
             _teams(r.throttled, "call_start"), (r.throttled,),
             (expect_starface(r.throttled, dnd=True, text=CALL_TEXT, timeout_s=15.0,
                              note=" (after the burst)"),)),
        Step(45, "team meeting ends", _each(*(_teams(u, "meeting_end") for u in r.team)), tuple(r.team),
             tuple(expect_starface(u, dnd=False, text="") for u in r.team)),
        Step(47, "drift repair runs again", lambda demo: demo.drift_repair()),
        Step(50, f"user {r.throttled} ends the Teams call", _teams(r.throttled, "call_end"), (r.throttled,),
             (expect_starface(r.throttled, dnd=False, text=""),)),
        Step(52, f"user {r.away} is back in the office", _teams(r.away, "oof_off"), (r.away,),
             (expect_starface(r.away, dnd=False, text=""),)),
        Step(55, f"user {r.manual} switches their DND off by hand",
             _pbx("toggle_dnd_by_hand", r.manual, False), (r.manual,)),
    ]


def _background_steps(rng: random.Random, background: list[int]) -> list[Step]:
    steps = []
    for user in background:
        start = round(rng.uniform(1.0, 46.0), 1)
        end = round(start + rng.uniform(6.0, 12.0), 1)
        steps.append(Step(start, f"user {user} starts a Teams call", _teams(user, "call_start"), (user,),
                          (expect_starface(user, dnd=True, text=CALL_TEXT),)))
        steps.append(Step(end, f"user {user} ends the Teams call", _teams(user, "call_end"), (user,),
                          (expect_starface(user, dnd=False, text=""),)))
    return steps


def everyone_back_to_normal(users: int) -> Check:
    """At the end of the hour nobody has a DND, a chat text of ours or a Teams session left over."""

    def check(probe: Probe) -> Verdict:
        wrong = [f"user {i}: {_describe_pbx(probe.pbx(i))}" for i in range(users)
                 if probe.pbx(i)["dnd"] or probe.pbx(i)["chatPresenceMessage"]]
        if not wrong:
            return True, f"all {users} users clear"
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        return None, "; ".join(wrong[:3]) + more

    return check


def office_hour(seed: int, users: int) -> tuple[list[Step], list[int]]:
    """The steps in time order, and the featured users (shown in the live table)."""
    if users < MIN_USERS:
        raise ValueError(f"the scripted hour needs at least {MIN_USERS} users, not {users}")
    rng = random.Random(seed)
    roles = _roles(rng, users)
    steps = [Step(0, f"all {users} users sign in to Teams", _sign_in_everyone(users))]
    steps += _featured_steps(roles) + _background_steps(rng, roles.background)
    steps.sort(key=lambda step: step.minute)  # stable: same-minute steps keep their scripted order
    steps.append(Step(60, "end of the hour: everyone is back to normal", lambda demo: None, barrier=True,
                      expect=(Expectation(f"all {users} users: no DND and no chat text left over",
                                          everyone_back_to_normal(users), timeout_s=10.0),)))
    featured = [roles.caller, roles.meeting, roles.calendar, roles.manual, roles.phone, roles.away,
                roles.throttled, roles.focus]
    return steps, featured
