"""Change load: many Teams calls start at once; how fast do the STARFACE writes land, and are there
duplicates?

Method: with beat paused, N signed-in users start a Teams call in the Microsoft simulator (control API,
16 connections). Then the tenants are made due and the tick driver starts (beat at 1 s), so the next
cycle sees all N changes at once and the worker processes apply them. "Applied" means the apply task
recorded its ChangeLog row (after its STARFACE writes returned). A few more cycles run afterwards
(late polls must not write again), and once no update is in flight the STARFACE simulator's request log
is compared with the ChangeLog: per account, phoneconfig PUTs (DND) and bridge setChatStatus calls
beyond the recorded changes are duplicate writes.
"""

from __future__ import annotations

import time
import xmlrpc.client
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from bench.harness import TickDriver, make_due, progress, teams_action, wait_for
from models import AppliedState, ChangeLog, UserLink
from models.db import transaction
from simulators.stack import Stack

_PHONECONFIG = "/phoneconfig"


def _max_change_id(stack: Stack) -> int:
    with transaction(stack.runtime.sessions) as session:
        return session.scalar(select(func.max(ChangeLog.id))) or 0


def _changes_since(stack: Stack, after_id: int, tenant_ids: list[int]) -> list[ChangeLog]:
    with transaction(stack.runtime.sessions) as session:
        return list(session.scalars(select(ChangeLog).where(
            ChangeLog.id > after_id, ChangeLog.tenant_id.in_(tenant_ids), ChangeLog.target == "starface")))


def _claims_in_flight(stack: Stack, tenant_ids: list[int]) -> int:
    with transaction(stack.runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(AppliedState).where(
            AppliedState.tenant_id.in_(tenant_ids), AppliedState.claim_id.is_not(None))) or 0


def _chat_account(body: str) -> int | None:
    """The account of a bridge setChatStatus call (the body's secret is never looked at or kept)."""
    try:
        params, method = xmlrpc.client.loads(body)
    except Exception:  # not XML-RPC: not a chat write
        return None
    if not (method or "").endswith(".setChatStatus") or not params or not isinstance(params[0], dict):
        return None
    return int(params[0]["account"])


def count_writes(stack: Stack) -> tuple[Counter[int], Counter[int], int]:
    """DND writes and chat writes per STARFACE account in the simulator's request log, and its length."""
    dnd: Counter[int] = Counter()
    chat: Counter[int] = Counter()
    log = stack.pbx.request_log()
    for entry in log:
        if entry["method"] == "PUT" and entry["path"].endswith(_PHONECONFIG):
            dnd[int(entry["path"].split("/")[3])] += 1
        elif entry["method"] == "POST" and entry["path"] == "/xml-rpc":
            account = _chat_account(entry["body"])
            if account is not None:
                chat[account] += 1
    return dnd, chat, len(log)


def duplicate_writes(stack: Stack, changes: list[ChangeLog], dnd: Counter[int], chat: Counter[int]) -> int:
    """Writes the simulator saw beyond the changes recorded for the same account and field."""
    with transaction(stack.runtime.sessions) as session:
        accounts = dict(session.execute(select(UserLink.id, UserLink.starface_account_id)).all())
    recorded_dnd: Counter[int] = Counter()
    recorded_chat: Counter[int] = Counter()
    for change in changes:
        account = accounts.get(change.user_link_id)
        if account is None:
            continue
        if "dnd" in change.after:
            recorded_dnd[account] += 1
        if "chat_text" in change.after:
            recorded_chat[account] += 1
    extra = sum(max(0, n - recorded_dnd[a]) for a, n in dnd.items())
    return extra + sum(max(0, n - recorded_chat[a]) for a, n in chat.items())


def measure_changes(stack: Stack, tenant_ids: list[int], users: list[int], driver: TickDriver,
                    batches_per_cycle: int, settle_cycles: int = 3,
                    timeout_s: float = 180.0) -> dict[str, Any]:
    """Runs the change load (see the module docstring); leaves the tick driver running."""
    stack.pbx.clear_request_log()
    baseline = _max_change_id(stack)
    started = time.perf_counter()
    teams_action(stack, users, "call_start")
    progress(f"changes: {len(users)} Teams calls started in {time.perf_counter() - started:.1f} s; polling")
    make_due(stack, tenant_ids)
    triggered = time.time()
    driver.start()
    expected = len(users)

    def applied() -> list[ChangeLog] | None:
        rows = [c for c in _changes_since(stack, baseline, tenant_ids) if c.cause == "teams:InACall"]
        return rows if len(rows) >= expected else None

    rows = wait_for(applied, timeout=timeout_s, what=f"{expected} STARFACE changes", interval=0.2)
    first = min(c.applied_at for c in rows).timestamp()
    last = max(c.applied_at for c in rows).timestamp()
    progress(f"changes: all {expected} applied {last - triggered:.1f} s after the trigger; settling")
    graph_now = stack.ms.count("getPresencesByUserId")
    wait_for(lambda: stack.ms.count("getPresencesByUserId") >= graph_now + settle_cycles * batches_per_cycle,
             timeout=30 + 3 * settle_cycles, what="the settle cycles", interval=0.5)
    wait_for(lambda: _claims_in_flight(stack, tenant_ids) == 0, timeout=60, what="no update in flight")
    dnd, chat, log_entries = count_writes(stack)
    all_changes = _changes_since(stack, baseline, tenant_ids)
    duplicates = duplicate_writes(stack, all_changes, dnd, chat)
    return {
        "changes": expected,
        "starface_writes_per_s": round(expected / (last - triggered), 1),
        "duplicate_writes": duplicates,
        "seconds_to_apply_all": round(last - triggered, 2),
        "first_applied_after_s": round(first - triggered, 2),
        "apply_writes_per_s": round(expected / (last - first), 1) if last > first else None,
        "dnd_puts": sum(dnd.values()),
        "chat_writes": sum(chat.values()),
        "changelog_rows": len(all_changes),
        "starface_requests": log_entries,
        "method": ("N users start a Teams call at once (beat paused), then beat resumes at 1 s; "
                   "starface_writes_per_s = changes / (last ChangeLog applied_at - trigger); duplicates = "
                   "phoneconfig PUTs and setChatStatus calls in the STARFACE simulator's request log beyond "
                   "the ChangeLog rows of the same account, after settle cycles"),
    }
