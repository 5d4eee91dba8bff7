"""The demo's closing figures, measured from what the system recorded and what the simulators saw:
changes applied per direction (ChangeLog), duplicate STARFACE writes (the PBX's request log against the
ChangeLog, per user and field), p50/p95 latency per direction (ChangeLog observed_at -> applied_at), and
the Graph requests the simulator answered."""

from __future__ import annotations

import math
import re
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass, field
from xml.parsers.expat import ExpatError

from demo.stack import Change, DemoStack
from simulators.paired import FIRST_ACCOUNT_ID

_PHONECONFIG = re.compile(r"^/rest/users/(\d+)/phoneconfig$")


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Direction:
    changes: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class Duplicates:
    """Writes the PBX received beyond those recorded as changes (must be 0), and the reverse."""

    dnd_puts: int
    chat_writes: int
    duplicate_writes: int
    unrecorded_users: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    teams_to_starface: Direction
    starface_to_teams: Direction
    repairs: int  # re-applied chat texts: by drift repair, or as soon as the bridge reported the overwrite
    duplicates: Duplicates
    graph_requests: int
    graph_by_route: dict[str, int]


def _direction(changes: list[Change], target: str, cause_prefix: str) -> Direction:
    rows = [c for c in changes if c.target == target and c.cause.startswith(cause_prefix)]
    latencies = [c.latency_ms for c in rows if c.latency_ms is not None]
    return Direction(len(rows), percentile(latencies, 50), percentile(latencies, 95))


def _chat_account(body: str) -> int | None:
    """The account of a bridge ``setChatStatus`` call (the body also holds the bridge secret: not kept)."""
    try:
        params, method = xmlrpc.client.loads(body)
    except (xmlrpc.client.Fault, ExpatError, ValueError):
        return None
    if not method or not method.endswith(".setChatStatus") or not params or not isinstance(params[0], dict):
        return None
    account = params[0].get("account")
    return account if isinstance(account, int) else None


def duplicates(demo: DemoStack, changes: list[Change]) -> Duplicates:
    """Per user: DND PUTs and chat writes seen by the PBX minus the ones the ChangeLog records."""
    puts: Counter[int] = Counter()
    chats: Counter[int] = Counter()
    for entry in demo.s.pbx.request_log():
        if entry["method"] == "PUT" and (match := _PHONECONFIG.match(entry["path"])):
            puts[int(match.group(1))] += 1
        elif entry["method"] == "POST" and entry["path"] == "/xml-rpc" and "setChatStatus" in entry["body"]:
            account = _chat_account(entry["body"])
            if account is not None:
                chats[account] += 1
    logged_dnd: Counter[int] = Counter()
    logged_chat: Counter[int] = Counter()
    for change in changes:
        if change.target != "starface" or change.user is None:
            continue
        account = FIRST_ACCOUNT_ID + change.user
        logged_dnd[account] += "dnd" in change.after
        logged_chat[account] += "chat_text" in change.after
    extra = sum(max(0, puts[a] - logged_dnd[a]) for a in puts) + sum(max(0, chats[a] - logged_chat[a])
                                                                       for a in chats)
    unrecorded = sorted(a - FIRST_ACCOUNT_ID for a in set(puts) | set(chats)
                        if puts[a] > logged_dnd[a] or chats[a] > logged_chat[a])
    return Duplicates(sum(puts.values()), sum(chats.values()), extra, unrecorded)


REPAIR_CAUSES = ("drift-repair", "starface:chat text overwritten")


def collect(demo: DemoStack) -> Summary:
    changes = demo.changes_after(0)
    counts = demo.s.ms.requests()["counts"]
    return Summary(
        teams_to_starface=_direction(changes, "starface", "teams:"),
        starface_to_teams=_direction(changes, "teams", "starface:"),
        repairs=sum(1 for c in changes if c.cause in REPAIR_CAUSES),
        duplicates=duplicates(demo, changes),
        graph_requests=sum(counts.values()),
        graph_by_route=dict(sorted(counts.items(), key=lambda item: -item[1])),
    )
