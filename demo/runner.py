"""Plays the scripted hour against a running ``DemoStack`` and checks every expectation.

One loop, a round every ``ROUND_S``:

1. run the scheduler tick when due (every ``tick_s``, as beat does);
2. run the steps whose scripted minute has come, in order, except a step whose users still have an
   expectation open (it waits, so a call never ends before its start was seen) or a barrier step while
   anything earlier is open;
3. look at the simulators once and settle open expectations: ``eventually`` ones hold as soon as their
   check does and fail at their timeout; ``throughout`` ones fail as soon as their check breaks;
4. show new ChangeLog rows, the users table and the hour's progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from demo.script import Expectation, Probe, Step
from demo.stack import DemoStack
from demo.view import View, user_row

ROUND_S = 0.1
TABLE_EVERY_S = 0.5


@dataclass(frozen=True)
class Outcome:
    ok: bool
    what: str
    seen: str
    #: Seconds from the scripted event until an ``eventually`` expectation held (None otherwise).
    took_s: float | None = None


@dataclass
class _Open:
    expectation: Expectation
    users: tuple[int, ...]
    started: float
    seen: str = "nothing yet"


@dataclass
class HourResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def held(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failures(self) -> list[str]:
        return [f"expected: {o.what}; seen: {o.seen}" for o in self.outcomes if not o.ok]


class HourRunner:
    def __init__(self, demo: DemoStack, steps: list[Step], table_users: list[int], view: View,
                 hour_s: float, tick_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._demo = demo
        self._queue = list(steps)
        self._table_users = table_users
        self._view = view
        self._hour_s = hour_s
        self._tick_s = tick_s
        self._clock = clock
        self._probe = Probe(demo)
        self._open: list[_Open] = []
        self._result = HourResult()
        self._last_change = 0

    def run(self) -> HourResult:
        start = self._clock()
        next_tick = start
        next_table = start
        while self._queue or self._open:
            now = self._clock()
            minute = min(60.0, (now - start) / self._hour_s * 60.0)
            if now >= next_tick:
                self._demo.tick()
                next_tick = now + self._tick_s
            self._run_due_steps(minute)
            self._settle()
            self._show_changes()
            if self._view.wants_table and now >= next_table:
                self._show_table()
                next_table = now + TABLE_EVERY_S
            self._view.progress(minute if self._queue else 60.0)
            time.sleep(ROUND_S)  # the loop's pace (conditions are polled above, each with its timeout)
        self._show_changes()
        if self._view.wants_table:
            self._show_table()
        return self._result

    # --- steps --------------------------------------------------------------------------------------
    def _run_due_steps(self, minute: float) -> None:
        busy = {user for item in self._open for user in item.users}
        waiting: list[Step] = []
        for step in self._queue:
            due = step.minute <= minute
            blocked = (step.barrier and (self._open or waiting)) or busy.intersection(step.users)
            if not due or blocked:
                waiting.append(step)
                busy.update(step.users)  # a user's later steps keep their order behind this one
                continue
            self._view.event(step.minute, step.text)
            started = self._clock()
            try:
                step.act(self._demo)
            except RuntimeError as exc:  # a simulator refused the scripted action
                self._record(False, f"step '{step.text}' runs", str(exc), 0.0, 0.0)
                continue
            for expectation in step.expect:
                self._open.append(_Open(expectation, step.users, started))
            busy.update(step.users)
        self._queue = waiting

    # --- expectations -------------------------------------------------------------------------------
    def _settle(self) -> None:
        if not self._open:
            return
        self._probe.new_round()
        still_open: list[_Open] = []
        for item in self._open:
            expectation = item.expectation
            verdict, item.seen = expectation.check(self._probe)
            waited = self._clock() - item.started
            timed_out = waited > expectation.timeout_s
            if expectation.kind == "eventually":
                done, ok = verdict is not None or timed_out, verdict is True
            else:
                done, ok = verdict is False or timed_out, verdict is not False
            if done:
                took = waited if ok and expectation.kind == "eventually" else None
                self._record(ok, expectation.what, item.seen, waited, expectation.timeout_s, took)
            else:
                still_open.append(item)
        self._open = still_open

    def _record(self, ok: bool, what: str, seen: str, waited: float, timeout_s: float,
                took_s: float | None = None) -> None:
        self._result.outcomes.append(Outcome(ok, what, seen, took_s))
        self._view.verdict(ok, what, seen, waited, timeout_s)

    # --- display ------------------------------------------------------------------------------------
    def _show_changes(self) -> None:
        for change in self._demo.changes_after(self._last_change):
            self._view.change(change)
            self._last_change = change.id

    def _show_table(self) -> None:
        self._probe.new_round()
        self._view.users([user_row(u, self._probe.pbx(u), self._probe.teams(u)) for u in self._table_users])
