"""The demo run: the product working end to end on one machine, with no server to install.

Starts the whole system in this process on embedded defaults (demo/stack.py), creates a demo tenant
against both simulators, plays a scripted, reproducible office hour (demo/script.py) while showing it
live (demo/view.py), and ends with a summary (demo/summary.py).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from rich.console import Console

from demo.runner import HourResult, HourRunner, Outcome
from demo.script import office_hour
from demo.stack import DemoStack
from demo.summary import collect
from demo.view import LiveView, PlainView, View, print_summary
from embedded.stack import Stack
from models.db import transaction
from simulators.paired import paired_seeds
from tenants.operators import add_operator, find_operator, set_password

#: The tenant polls Teams every second; the tick runs four times as often (a compressed hour).
POLL_INTERVAL_S = 1.0
TICK_S = 0.25
SHORT_USERS = 20
SHORT_HOUR_S = 15.0


class _Notes:
    """System warnings go to the view once it exists; earlier ones wait for it."""

    def __init__(self) -> None:
        self.view: View | None = None
        self._early: list[str] = []

    def __call__(self, text: str) -> None:
        if self.view is None:
            self._early.append(text)
        else:
            self.view.note(text)

    def attach(self, view: View) -> None:
        self.view = view
        for text in self._early:
            view.note(text)
        self._early.clear()


def run_demo(users: int, seed: int, hour_seconds: float, data_dir: Path | None) -> bool:
    """Plays the office hour and prints the summary; True if every scripted expectation held."""
    console = Console()
    steps, featured = office_hour(seed, users)
    started = time.monotonic()
    console.print(f"Starting TeamsConnect in this process: {users} users, seed {seed}, "
                  f"the office hour in {hour_seconds:.0f} s (SQLite, in-process broker, simulators) ...",
                  markup=False, highlight=False)
    notes = _Notes()
    result = HourResult()
    with DemoStack(paired_seeds(users), data_dir, POLL_INTERVAL_S, notes) as demo_stack:
        linked = demo_stack.linked_users()
        result.outcomes.append(Outcome(linked == users, f"directory sync links all {users} users by e-mail",
                                f"{linked} linked"))
        stack = demo_stack.s
        console.print(f"Ready: tenant 'demo' (id {stack.tenant_id}) with {linked} linked users; web app at "
                      f"{stack.web_url}, Microsoft simulator at {stack.microsoft.base_url}, "
                      f"STARFACE simulator at {stack.starface.base_url}",
                      markup=False, highlight=False)
        console.print(f"Admin console: {stack.web_url}/console/ - sign in as demo / {_console_login(stack)} "
                      "(a password for this run only)", markup=False, highlight=False)
        view: View = LiveView(console, seed, users) if console.is_terminal else PlainView(console)
        notes.attach(view)
        try:
            table_users = featured + [u for step in steps for u in step.users if u not in featured][:4]
            runner = HourRunner(demo_stack, steps, list(dict.fromkeys(table_users)), view,
                                hour_s=hour_seconds, tick_s=TICK_S)
            result.outcomes += runner.run().outcomes
        finally:
            view.close()
        summary = collect(demo_stack)
    duplicates = summary.duplicates.duplicate_writes
    result.outcomes.append(Outcome(duplicates == 0, "no duplicate STARFACE writes",
                                   f"{duplicates} duplicate(s)"))
    seen_after_s = [o.took_s for o in result.outcomes if o.took_s is not None]
    print_summary(console, summary, result.held, result.failures, time.monotonic() - started, seen_after_s)
    return not result.failures


def _console_login(stack: Stack) -> str:
    """A one-time admin password for the console: a fresh one each run (the data dir may be kept)."""
    password = secrets.token_urlsafe(12)
    with transaction(stack.runtime.sessions) as session:
        if find_operator(session, "demo") is None:
            add_operator(session, "demo", password, "admin")
        else:
            set_password(session, "demo", password)
    return password
