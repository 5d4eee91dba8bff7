"""How the demo shows itself: a live rich view on a terminal, plain progress lines anywhere else (CI, tests,
pipes), and the closing summary. Both views take the same calls from the runner."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from demo.stack import Change
from demo.summary import Direction, Summary, percentile

LOG_LINES = 14
MIN_LOG_LINES = 4
COLUMNS = ("user", "Teams presence", "our Teams session", "STARFACE DND", "chat text", "telephony")


@dataclass(frozen=True)
class UserRow:
    """One user as both systems show them right now."""

    user: int
    teams: str
    session: str
    dnd: bool
    chat_text: str
    telephony: str


def user_row(user: int, pbx: dict[str, Any], presence: dict[str, Any]) -> UserRow:
    teams = f"{presence['availability']}/{presence['activity']}"
    if (presence.get("outOfOfficeSettings") or {}).get("isOutOfOffice"):
        teams += " (OOF)"
    apps = (presence.get("sessions") or {}).get("apps") or {}
    session = ", ".join(f"{s['availability']}/{s['activity']}" for s in apps.values()) or "-"
    return UserRow(user, teams, session, bool(pbx["dnd"]), pbx["chatPresenceMessage"], pbx["telephonyState"])


def describe_change(change: Change) -> str:
    who = f"user {change.user}" if change.user is not None else "a user"
    fields = ", ".join(f"{k}={v!r}" for k, v in change.after.items())
    arrow = "Teams -> STARFACE" if change.target == "starface" else "STARFACE -> Teams"
    latency = f"{change.latency_ms:.0f} ms" if change.latency_ms is not None else "-"
    return f"{arrow} {who}: {fields} ({change.cause}, {latency})"


class View(Protocol):
    wants_table: bool

    def event(self, minute: float, text: str) -> None: ...
    def verdict(self, ok: bool, what: str, seen: str, after_s: float, timeout_s: float) -> None: ...
    def change(self, change: Change) -> None: ...
    def note(self, text: str) -> None: ...
    def progress(self, minute: float) -> None: ...
    def users(self, rows: list[UserRow]) -> None: ...
    def close(self) -> None: ...


def _verdict_line(ok: bool, what: str, seen: str, after_s: float, timeout_s: float) -> str:
    if ok:
        return f"ok    {what} ({after_s:.1f} s)"
    return f"FAIL  expected: {what} (within {timeout_s:.0f} s); seen: {seen}"


class PlainView:
    """Progress as plain lines, one per event, check and change (stdout is not a terminal)."""

    wants_table = False

    def __init__(self, console: Console) -> None:
        self._console = console
        self._next_mark = 10

    def _line(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def event(self, minute: float, text: str) -> None:
        self._line(f"[minute {minute:4.1f}] {text}")

    def verdict(self, ok: bool, what: str, seen: str, after_s: float, timeout_s: float) -> None:
        self._line("  " + _verdict_line(ok, what, seen, after_s, timeout_s))

    def change(self, change: Change) -> None:
        self._line("  applied " + describe_change(change))

    def note(self, text: str) -> None:
        self._line(f"  system {text}")

    def progress(self, minute: float) -> None:
        if minute >= self._next_mark:
            self._line(f"-- office hour: {self._next_mark} of 60 minutes played --")
            self._next_mark += 10

    def users(self, rows: list[UserRow]) -> None:
        pass

    def close(self) -> None:
        pass


class LiveView:
    """A rich Live screen: progress bar of the hour, users involved in events, scrolling log."""

    wants_table = True

    def __init__(self, console: Console, seed: int, users: int) -> None:
        self._title = f"TeamsConnect demo - {users} users, seed {seed}"
        self._progress = Progress(TextColumn("office hour"), BarColumn(),
                                  TextColumn("minute {task.completed:4.1f} of 60"), console=console)
        self._task = self._progress.add_task("hour", total=60)
        self._rows: list[UserRow] = []
        # The log gets what the terminal has left under the progress bar and a table of ~12 users.
        self._log: deque[Text] = deque(maxlen=max(MIN_LOG_LINES, min(LOG_LINES, console.height - 22)))
        self._live = Live(self, console=console, refresh_per_second=8, transient=False)
        self._live.start()

    def __rich__(self) -> Group:
        table = Table(title=self._title, expand=True)
        for column in COLUMNS:
            table.add_column(column)
        for row in self._rows:
            table.add_row(str(row.user), row.teams, row.session, "on" if row.dnd else "off",
                          row.chat_text or "-", row.telephony)
        log = Panel(Group(*self._log) if self._log else Text("waiting for the first change ..."),
                    title="events, checks and applied changes (latency)")
        return Group(self._progress, table, log)

    def event(self, minute: float, text: str) -> None:
        self._log.append(Text(f"[{minute:4.1f}] {text}", style="bold"))

    def verdict(self, ok: bool, what: str, seen: str, after_s: float, timeout_s: float) -> None:
        self._log.append(Text("  " + _verdict_line(ok, what, seen, after_s, timeout_s),
                              style="green" if ok else "bold red"))

    def change(self, change: Change) -> None:
        self._log.append(Text("  " + describe_change(change), style="cyan"))

    def note(self, text: str) -> None:
        self._log.append(Text(f"  system {text}", style="yellow"))

    def progress(self, minute: float) -> None:
        self._progress.update(self._task, completed=minute)

    def users(self, rows: list[UserRow]) -> None:
        self._rows = rows

    def close(self) -> None:
        self._live.stop()


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _direction(name: str, direction: Direction) -> str:
    return (f"  changes applied, {name}: {direction.changes}   "
            f"latency p50 {_ms(direction.p50_ms)}, p95 {_ms(direction.p95_ms)}")


def print_summary(console: Console, summary: Summary, held: int, failures: list[str],
                  elapsed_s: float, seen_after_s: list[float]) -> None:
    """The closing figures, plain text (readable in a terminal and in CI logs alike)."""
    dup = summary.duplicates
    lines = [
        "",
        f"Summary ({elapsed_s:.1f} s)",
        _direction("Teams -> STARFACE", summary.teams_to_starface),
        _direction("STARFACE -> Teams", summary.starface_to_teams),
        "  (latency: from the poll or webhook event that observed a change to the write that applied it)",
        f"  repairs (chat text the STARFACE app overwrote, re-applied): {summary.repairs}",
        f"  scripted event -> expected state visible: p50 {_s(percentile(seen_after_s, 50))}, "
        f"p95 {_s(percentile(seen_after_s, 95))} (with the wait for the next poll and the throttling burst)",
        f"  duplicate writes: {dup.duplicate_writes} (STARFACE saw {dup.dnd_puts} DND writes and "
        f"{dup.chat_writes} chat-text writes)",
        f"  Graph requests made: {summary.graph_requests} ("
        + ", ".join(f"{route} {n}" for route, n in summary.graph_by_route.items()) + ")",
        f"  expectations held: {held} of {held + len(failures)}",
    ]
    if dup.unrecorded_users:
        lines.append(f"  users with writes not in the change log: {dup.unrecorded_users}")
    for failure in failures:
        lines.append(f"  FAILED {failure}")
    lines.append("RESULT: " + ("every scripted expectation held" if not failures
                                else f"{len(failures)} expectation(s) failed"))
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
