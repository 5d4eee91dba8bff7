"""STARFACE update: claim the user's applied state, read STARFACE, write only what must change.

Exactly-once per change, however often the task is delivered or run concurrently:

1. Claim the applied-state row by compare-and-set on the version the plan was decided from. A
   duplicate or an overtaken task loses the claim and drops its work.
2. Read the DND right before writing (a DND switched on by hand is found here and left alone).
3. Let the engine finalize the writes against that read; write DND over REST, chat text and telephony
   through the bridge (tier 2 only).
4. Record the new applied state, release the claim and append the audit row, in one transaction.

A worker that dies between 1 and 4 leaves a claim that expires after ``UPDATE_CLAIM_LEASE``; the next poll
decides again from what is applied, and the claim's recorded intent lets the next writer recognise a DND
the dead worker had already switched on as ours. The same holds for an attempt that failed half-way (the
DND PUT went through, then the PBX answered 503): its claim is released with the intent left on the row
(``release_claim``), and the retry records the DND as this change's and owns it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from connectors.starface import (
    BridgeUnknownAccount,
    BridgeUserState,
    StarfaceBridgeClient,
    StarfaceError,
    StarfaceRestClient,
)
from models import AppliedState, Target, Tenant, UserLink
from models.base import utcnow
from models.db import transaction
from models.store import (
    append_changes,
    claim,
    claim_many,
    complete_claim,
    complete_claims,
    ensure_row,
    ensure_rows,
    load_applied_states,
    record_change,
    release_claim,
    release_claims,
)
from presence import (
    StarfaceApplied,
    StarfacePlan,
    StarfaceReading,
    StarfaceWrites,
    TeamsApplied,
    TenantPolicy,
    finalize_starface,
    repair_starface,
)
from presence.policy import DndAction
from sync import health
from sync.coordination import PbxGate, PbxLane, PbxLimits
from sync.echoes import OwnWrites
from sync.ports import TASK_TIME_LIMIT_S, ApplyItem, TaskQueue
from sync.runtime import Runtime
from tenants.policy import policy_for
from tenants.service import load_tenant

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A claim that outlives its holder's hard time limit: for a Teams session change (one Graph call, which may
#: wait out a Retry-After) and a drift repair.
CLAIM_LEASE = timedelta(seconds=TASK_TIME_LIMIT_S + 30)
#: A STARFACE update's claim. A worker killed mid-update (kill -9, OOM, a pool child hit by a signal) leaves
#: its claim behind and its users wait this long for the next writer (chaos suite: 90 s before); the
#: holder's ``WriteFence`` keeps this short lease safe.
UPDATE_CLAIM_LEASE = timedelta(seconds=30)
#: An update's holder starts no STARFACE write once less than this is left of its lease: more than one
#: request's timeout (10 s) plus clock skew between workers, so no write of a holder still runs when a
#: takeover can start.
WRITE_MARGIN = timedelta(seconds=12)
MAX_RETRIES = 5


class LeaseRunningOut(StarfaceError):
    """An update's claim is too close to its expiry for another write: the user is released and tried
    again (a transient failure, like a 503), so no write of ours can overlap the next holder's."""

    permanent = False


class WriteFence:
    """Measures an update's lease on this worker's own monotonic clock, started before the claim's
    expiry was computed, so it always ends earlier than the lease the database holds."""

    def __init__(self, lease: timedelta, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_write_at = clock() + (lease - WRITE_MARGIN).total_seconds()

    def check(self) -> None:
        """Raises ``LeaseRunningOut`` when no further write may start under this claim."""
        late_s = self._clock() - self._last_write_at
        if late_s > 0:
            raise LeaseRunningOut(
                f"the update's claim ends in less than {WRITE_MARGIN.total_seconds():.0f} s "
                f"({late_s:.1f} s past its last write time); the user is tried again")


def owned_fields(applied: StarfaceApplied) -> list[str]:
    """The STARFACE fields we set ourselves (the only ones we may clear)."""
    owned = []
    if applied.dnd_ours:
        owned.append("dnd")
    if applied.chat_text:
        owned.append("chat_text")
    if applied.chat_symbol:
        owned.append("chat_symbol")
    if applied.telephony_active:
        owned.append("telephony")
    return owned


def _written(writes: StarfaceWrites) -> dict[str, Any]:
    after: dict[str, Any] = {}
    if writes.dnd is not None:
        after["dnd"] = writes.dnd
    if writes.chat_text is not None:
        after["chat_text"] = writes.chat_text
    if writes.chat_symbol is not None:
        after["chat_symbol"] = writes.chat_symbol
    if writes.telephony_state is not None:
        after["telephony"] = writes.telephony_state
    return after


def perform_writes(account: int, writes: StarfaceWrites, rest: StarfaceRestClient,
                   bridge: StarfaceBridgeClient | None, gate: PbxGate | PbxLane | None = None,
                   config: Any = None, fence: WriteFence | None = None, own: OwnWrites | None = None) -> None:
    """Writes exactly the fields the engine asked for (DND over REST, the rest through the bridge), each
    request through the PBX's gate when given and only while the ``fence`` allows it. ``config`` is the
    PhoneConfig read just before (saves the DND write its own GET). ``own`` notes the writes first, so
    the webhook receiver knows their echoes (sync/echoes.py)."""
    check = fence.check if fence is not None else None
    # setChatStatus: presence "" keeps the symbol; the message is always written (the engine passes the
    # text shown when only the symbol changes).
    chat_message = None
    if bridge is not None and (writes.chat_text is not None or writes.chat_symbol is not None):
        chat_message = writes.chat_text if writes.chat_text is not None else (writes.applied.chat_text or "")
    telephony = writes.telephony_state if bridge is not None else None
    if own is not None:
        own.note(account, writes.dnd, chat_message, telephony)
    if writes.dnd is not None:
        with _gated(gate, check):
            rest.set_dnd(account, writes.dnd, config)
    if bridge is not None:
        if chat_message is not None:
            with _gated(gate, check):
                bridge.set_chat_status(account, writes.chat_symbol or "", chat_message)
        if telephony is not None:
            with _gated(gate, check):
                bridge.set_telephony_status(account, telephony)


def _gated(gate: PbxGate | PbxLane | None, before_send: Callable[[], None] | None = None) -> Any:
    """The PBX's gate around one request; ``before_send`` runs once the request may go (a write's fence)."""
    if gate is not None:
        return gate.request(before_send)
    if before_send is not None:
        before_send()
    return contextlib.nullcontext()


def pbx_gate(runtime: Runtime, tenant: Tenant) -> PbxGate:
    """The gate of the tenant's PBX (keyed by its address: tenants sharing a PBX share its limits)."""
    return pbx_gate_at(runtime, tenant.starface_base_url)


def pbx_gate_at(runtime: Runtime, base_url: str) -> PbxGate:
    """The gate of the PBX at ``base_url`` (as stored for a tenant), e.g. for credentials not stored yet."""
    settings = runtime.settings
    limits = PbxLimits(max_in_flight=settings.starface_max_in_flight, max_per_s=settings.starface_max_per_s)
    return PbxGate(runtime.coordination, base_url.rstrip("/"), limits)


#: Requests one user's lane pays for with its first slot of the PBX's gate (PbxLane): a change's usual
#: phoneconfig read, DND write and setChatStatus (3.04 requests per change measured); fewer are given back.
LANE_REQUESTS = 3
#: A batch reads the chat status of at most this many of its claimed users in one ``getStates``.
CHAT_READ_AHEAD_USERS = 32
#: A chat status read ahead is used only this soon after the read; an older one is read again.
CHAT_READ_AHEAD_MAX_AGE_S = 2.0
#: PBX requests of a change with the chat text on, counted as with the read per user (phoneconfig read,
#: chat read, DND and chat writes): a shared read makes it about 3, so reads sized by 4 err towards use
#: while fresh.
REQUESTS_PER_CHANGE = 4


def chat_read_ahead_users(limits: PbxLimits) -> int:
    """How many users one read covers: those the PBX's rate lets us write within the read's age (10 at
    the default 20 requests/s), so a read ahead is rarely too old to use; at most CHAT_READ_AHEAD_USERS."""
    per_age = int(limits.max_per_s * CHAT_READ_AHEAD_MAX_AGE_S / REQUESTS_PER_CHANGE)
    return max(1, min(CHAT_READ_AHEAD_USERS, per_age))


class ChatReadAhead:
    """The chat status shown for a batch's claimed users, read for the next ones in ONE ``getStates`` when
    the first of them needs it, instead of one call per user: a change then costs the PBX about 3
    requests and a tenth, not 4 (issue 14).

    Exactly once holds as with the read per user: every user of the batch is claimed before any of
    these reads, so nothing of ours writes a claimed user's chat status between the read and the write.
    What the read adds is age: a text the user sets in the STARFACE app in the last seconds before our
    write (``CHAT_READ_AHEAD_MAX_AGE_S`` at most; with the read per user, the wait for the gate between
    read and write, up to a second at the default limits) is overwritten (as Teams leads anyway) or, where
    ours was shown, cleared: "a chat text is cleared only if we set it" holds for what was shown up to 2 s
    before the write. Each state is used once.
    A read covers at most ``users``; fewer while its states grow too old before they are used (other
    batches share the PBX's rate): halved after a state went stale, one more after each read.
    """

    def __init__(self, bridge: StarfaceBridgeClient, accounts: list[int], users: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bridge = bridge
        self._most_users = self._users = users
        self._order = accounts
        self._position = {account: index for index, account in enumerate(accounts)}
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[int, tuple[float, BridgeUserState | None]] = {}
        self._used: set[int] = set()

    def _fresh(self, read_at: float | None) -> bool:
        return read_at is not None and self._clock() - read_at <= CHAT_READ_AHEAD_MAX_AGE_S

    def shown(self, account: int, gate: PbxLane | None) -> BridgeUserState | None:
        """The state the PBX shows for ``account``: read ahead, or read now with the next users'."""
        with self._lock:
            read_at, state = self._states.pop(account, (None, None))
            self._used.add(account)
            if read_at is not None:
                if self._fresh(read_at):
                    return state
                self._users = max(1, self._users // 2)  # read too far ahead for the pace of the writes
            accounts = self._next_accounts(account)
            read_at = self._clock()  # taken before the request: the states are at most this old
            with _gated(gate):
                try:
                    states = self._bridge.get_states(accounts)
                except BridgeUnknownAccount:
                    if len(accounts) == 1:
                        raise
                    # One of the others left the PBX: this user alone; theirs are read when they need it.
                    accounts = [account]
                    states = self._bridge.get_states(accounts)
            self._users = min(self._most_users, self._users + 1)
            by_account = {shown.account: shown for shown in states}
            for other in accounts[1:]:
                self._states[other] = (read_at, by_account.get(other))
            return by_account.get(account)

    def _next_accounts(self, account: int) -> list[int]:
        """``account`` and the batch's next users whose state is neither used nor read and still fresh."""
        accounts = [account]
        start = self._position.get(account)
        if start is None:
            return accounts
        for other in self._order[start + 1:]:
            if len(accounts) >= self._users:
                break
            if other not in self._used and not self._fresh(self._states.get(other, (None, None))[0]):
                accounts.append(other)
        return accounts


def read_and_write(plan: StarfacePlan, account: int, applied: StarfaceApplied,
                   previous_intent: dict[str, Any] | None, policy: Any, rest: StarfaceRestClient,
                   bridge: StarfaceBridgeClient | None, gate: PbxGate | None,
                   fence: WriteFence | None = None,
                   chat_reads: ChatReadAhead | None = None,
                   own: OwnWrites | None = None) -> tuple[StarfaceReading, StarfaceWrites]:
    """Steps 2 and 3 of the module docstring for one claimed user: ONE phoneconfig read (its DND decides,
    and the DND write puts back the same config), the engine's final word, the writes (each only while
    the claim's ``fence`` allows it); one after another through one lane of the PBX's gate. The chat
    status shown comes from ``chat_reads`` when a batch gives one, else from a read of its own. ``own``
    notes the writes for the webhook receiver (sync/echoes.py)."""
    if gate is None:
        return _read_and_write(plan, account, applied, previous_intent, policy, rest, bridge, None, fence,
                               chat_reads, own)
    with gate.lane(requests=LANE_REQUESTS) as lane:
        return _read_and_write(plan, account, applied, previous_intent, policy, rest, bridge, lane, fence,
                               chat_reads, own)


def _read_and_write(plan: StarfacePlan, account: int, applied: StarfaceApplied,
                    previous_intent: dict[str, Any] | None, policy: Any, rest: StarfaceRestClient,
                    bridge: StarfaceBridgeClient | None, gate: PbxLane | None,
                    fence: WriteFence | None,
                    chat_reads: ChatReadAhead | None,
                    own: OwnWrites | None) -> tuple[StarfaceReading, StarfaceWrites]:
    # A batch's read of the chat status comes first: a lane waiting for another's read then holds no
    # slot of the PBX's gate, so the read's own request always gets one. Its failure (a bridge that
    # rejects our secret) stops only a user who needs the chat status, as its own read would.
    read_ahead: BridgeUserState | None = None
    read_ahead_failed: StarfaceError | None = None
    if chat_reads is not None:
        try:
            read_ahead = chat_reads.shown(account, gate)
        except StarfaceError as exc:
            read_ahead_failed = exc
    config = None
    if policy.set_dnd:
        with _gated(gate):
            config = rest.read_phone_config(account)
    reading = StarfaceReading(dnd=config.doNotDisturb if config is not None else None)
    if dnd_set_before(applied, previous_intent, reading):
        # A dead worker or a failed attempt switched this DND on: it is ours, not the user's.
        applied = replace(applied, dnd_ours=True)
    writes = finalize_starface(plan, reading, applied, policy)
    if bridge is not None and (writes.chat_text is not None or writes.chat_symbol is not None):
        # Read before writing, as for the DND: what is shown decides. A text of someone else's stays,
        # and a text this very plan wrote before its record was lost (a retry after a timeout, a claim
        # taken over after its holder died) is not written twice (design.md, exactly once).
        if chat_reads is not None:
            if read_ahead_failed is not None:
                raise read_ahead_failed
            shown = read_ahead
        else:
            with _gated(gate):
                shown = next(iter(bridge.get_states([account])), None)
        if shown is not None:
            reading = replace(reading, chat_text=shown.chat_presence_message,
                              chat_symbol=str(shown.chat_presence))
            writes = finalize_starface(plan, reading, applied, policy)
    if writes.has_writes:
        perform_writes(account, writes, rest, bridge, gate, config, fence, own)
    return reading, writes


class _Interrupted(StarfaceError):
    """A user's writes stopped by something other than the PBX (e.g. the shared store restarting): retried
    alone like a transient STARFACE error, so the batch's other users are still recorded."""

    permanent = False


def dnd_set_before(applied: StarfaceApplied, previous_intent: dict[str, Any] | None,
                   reading: StarfaceReading) -> bool:
    """Whether the DND read is one the claim's previous holder switched on and never recorded: its intent
    was to set it, it is on, and neither we nor (as far as we know) the user had it on before."""
    return bool(previous_intent and reading.dnd and not applied.dnd_ours and not applied.dnd_manual
                and previous_intent.get("dnd") == DndAction.SET.value)


def recovered_writes(applied: StarfaceApplied, previous_intent: dict[str, Any] | None,
                     reading: StarfaceReading, writes: StarfaceWrites) -> dict[str, Any]:
    """What a claim's previous holder wrote but never recorded (it died, its record was lost, or the PBX
    failed after its first writes), as found shown on the PBX when the claim is taken over: recorded now
    (``audit_rows``), so the audit trail misses no write and none is made twice."""
    if not previous_intent:
        return {}
    after: dict[str, Any] = {}
    if dnd_set_before(applied, previous_intent, reading):
        after["dnd"] = True
    if writes.chat_text is None and writes.applied.chat_text \
            and writes.applied.chat_text != applied.chat_text:
        after["chat_text"] = writes.applied.chat_text
    return after


#: The audit cause of writes an interrupted update made, recorded apart from the change that found them.
RECOVERED_CAUSE = "recovered: written by an interrupted update"


def audit_rows(recovered: dict[str, Any], written: dict[str, Any], cause: str) -> list[tuple[dict[str, Any],
                                                                                            str]]:
    """The audit rows (after, cause) of one recorded update: what it wrote, with what an interrupted update
    wrote before it - in the same row when they touch different fields, else as a row of its own first (a
    DND switched on by a dead update and off by this one is two writes)."""
    if recovered.keys() & written.keys():
        return [(recovered, RECOVERED_CAUSE), (written, cause)]
    after = {**recovered, **written}
    return [(after, cause)] if after else []


def _cause(plan: StarfacePlan) -> str:
    """The audit trail's cause: the plan's own, the Teams category, or a release of what a mirrored DND
    hid."""
    if plan.cause:
        return plan.cause
    return f"teams:{plan.category.value}" if plan.category is not None else "teams:released"


class RetryableStarfaceError(Exception):
    """Raised to let Celery retry an update after a transient STARFACE error (claim released).

    ``next_version`` is the applied-state version after the release: the retry must expect it.
    """

    def __init__(self, message: str, next_version: int | None) -> None:
        super().__init__(message)
        self.next_version = next_version


def run_apply(runtime: Runtime, tenant_id: int, user_link_id: int, plan_json: dict[str, Any],
              expected_version: int | None) -> dict[str, Any]:
    """Applies one plan for one user (see the module docstring); returns a summary."""
    plan = StarfacePlan.from_json(plan_json)
    claim_id = uuid.uuid4().hex
    fence = WriteFence(UPDATE_CLAIM_LEASE)
    now = utcnow()
    with transaction(runtime.sessions) as session:
        # A release (sync/release.py) must also run for a tenant that was just disabled.
        tenant = load_tenant(session, tenant_id, include_disabled=plan.release)
        # Tenant isolation: the user must belong to this tenant.
        link = session.scalars(
            select(UserLink).where(UserLink.id == user_link_id, UserLink.tenant_id == tenant_id)
        ).one_or_none()
        if tenant is None or link is None:
            return {"dropped": "tenant or user gone"}
        if expected_version is None:
            ensure_row(session, tenant_id=tenant_id, user_link_id=user_link_id, target=Target.STARFACE.value)
            expected_version = 1
        row = session.scalars(
            select(AppliedState).where(AppliedState.user_link_id == user_link_id,
                                       AppliedState.target == Target.STARFACE.value)
        ).one()
        previous_intent = row.claim_fields  # a dead holder's or a failed attempt's intent, else None
        won = claim(session, user_link_id=user_link_id, target=Target.STARFACE.value,
                    expected_version=expected_version, claim_id=claim_id, claim_fields=plan_json,
                    expires_at=now + UPDATE_CLAIM_LEASE, now=now)
        if not won:
            return {"dropped": "superseded"}
        applied = StarfaceApplied.from_json(row.fields)
        policy = policy_for(tenant)
        rest = runtime.starface(tenant)
        bridge = runtime.bridge(tenant) if (policy.chat_enabled or policy.telephony_enabled) else None
        account = link.starface_account_id

        gate = pbx_gate(runtime, tenant)

    try:
        reading, writes = read_and_write(plan, account, applied, previous_intent, policy, rest, bridge, gate,
                                         fence, own=OwnWrites(runtime.coordination, tenant_id))
    except StarfaceError as exc:
        with transaction(runtime.sessions) as session:
            next_version = release_claim(session, user_link_id=user_link_id, target=Target.STARFACE.value,
                                         claim_id=claim_id)
            if exc.permanent:
                health.record_error(session, tenant_id, type(exc).__name__, str(exc), poll=False)
        if exc.permanent:
            log.error("tenant %s user %s: STARFACE refused the update: %s", tenant_id, user_link_id, exc)
            return {"failed": type(exc).__name__}
        raise RetryableStarfaceError(f"tenant {tenant_id} user {user_link_id}: {exc}", next_version) from exc

    record_writes(runtime, tenant_id, user_link_id, claim_id, writes, before={"dnd": reading.dnd},
                  cause=_cause(plan), observed_at=plan.observed_at,
                  observed_seq=plan.sequence_number,
                  recovered=recovered_writes(applied, previous_intent, reading, writes))
    return {"writes": _written(writes), "stale": writes.stale}


#: How long the record of writes already made waits for an unreachable database (a restart) before it
#: gives up; within the task's soft time limit together with the writes themselves.
RECORD_RETRY_S = 15.0


def durably(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """Runs ``work`` in one transaction, again while the database is unreachable, for up to
    RECORD_RETRY_S: the STARFACE writes are made, and a record lost now would make them again after the
    claim lease (found by the chaos suite's PostgreSQL restart)."""
    deadline = time.monotonic() + RECORD_RETRY_S
    delay_s = 0.25
    while True:
        try:
            with transaction(runtime.sessions) as session:
                return work(session)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay_s > deadline:
                raise
            log.warning("database unreachable while recording STARFACE writes (%s); retrying in %.2f s",
                        type(exc).__name__, delay_s)
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, 2.0)


def record_writes(runtime: Runtime, tenant_id: int, user_link_id: int, claim_id: str, writes: StarfaceWrites,
                  before: dict[str, Any], cause: str, observed_at: datetime | None,
                  observed_seq: str | None, noticed_at: datetime | None = None,
                  recovered: dict[str, Any] | None = None) -> None:
    """After the external writes: the new applied state, the claim released, the audit row and the
    health counter, in one transaction. ``observed_at``/``observed_seq`` stay on the applied state;
    the audit row's latency starts at ``noticed_at`` when given (a repair notices drift now)."""
    applied_at = utcnow()

    def record(session: Session) -> bool:
        recorded = complete_claim(
            session, user_link_id=user_link_id, target=Target.STARFACE.value, claim_id=claim_id,
            fields=writes.applied.to_json(), owned=owned_fields(writes.applied),
            observed_at=observed_at, observed_seq=observed_seq, now=applied_at,
        )
        rows = audit_rows(recovered or {}, _written(writes), cause)
        for after, why in rows:
            record_change(session, tenant_id=tenant_id, user_link_id=user_link_id,
                          target=Target.STARFACE.value, before=before, after=after, cause=why,
                          observed_at=noticed_at or observed_at, applied_at=applied_at)
        if rows:
            health.record_changes(session, tenant_id, len(rows))
        return recorded

    if not durably(runtime, record):
        log.warning("tenant %s user %s: claim expired before the write was recorded", tenant_id, user_link_id)


def repair_user(runtime: Runtime, tenant: Tenant, policy: TenantPolicy, link: UserLink, row: AppliedState,
                reading: StarfaceReading, teams_row: AppliedState | None, cause: str) -> bool:
    """Re-applies what the user's applied state still asks for, given STARFACE as read back (drift repair)
    or as a bridge event reported it (the STARFACE app overwrote our chat text); True if it wrote."""
    if row.claim_fields is not None:
        # An interrupted update's intent is unsettled: what is shown may be its write, not drift. The poll
        # hands the user's next update on, which settles it from what it reads (run_apply).
        return False
    applied = StarfaceApplied.from_json(row.fields)
    applied_teams = TeamsApplied.from_json(teams_row.fields) if teams_row is not None else None
    writes = repair_starface(policy, reading, applied, applied_teams)
    if not writes.has_writes and writes.applied == applied:
        return False
    claim_id = uuid.uuid4().hex
    now = utcnow()
    with transaction(runtime.sessions) as session:
        if not claim(session, user_link_id=link.id, target=Target.STARFACE.value,
                     expected_version=row.version, claim_id=claim_id, claim_fields={"repair": True},
                     expires_at=now + CLAIM_LEASE, now=now):
            return False  # an update is under way; the next repair looks again
    try:
        if writes.has_writes:
            # Through the PBX's gate like every update: a repair must not push the PBX past its limits.
            with pbx_gate(runtime, tenant).lane() as lane:
                perform_writes(link.starface_account_id, writes, runtime.starface(tenant),
                               runtime.bridge(tenant), lane, own=OwnWrites(runtime.coordination, tenant.id))
    except StarfaceError:
        with transaction(runtime.sessions) as session:
            release_claim(session, user_link_id=link.id, target=Target.STARFACE.value, claim_id=claim_id)
        raise
    record_writes(runtime, tenant.id, link.id, claim_id, writes,
                  before={"dnd": reading.dnd, "chat_text": reading.chat_text}, cause=cause,
                  observed_at=row.observed_at, observed_seq=row.observed_seq, noticed_at=now)
    return writes.has_writes


#: Delay before a user whose write failed transiently in a batch is tried again on its own (the single
#: update task then backs off further, workers.apply.RETRY_DELAYS_S).
BATCH_RETRY_DELAY_S = 1.0
#: A batch starts no user's requests after this long (a PBX slowed down or penalized): the rest is
#: released untouched and queued as a new batch, so no task comes near its time limit with writes done
#: but not recorded, and a user started just before it still has its writes' time under the claim's
#: ``WriteFence`` (UPDATE_CLAIM_LEASE - WRITE_MARGIN = 18 s).
BATCH_TIME_BUDGET_S = 12.0


def run_apply_batch(runtime: Runtime, tenant_id: int, items: list[ApplyItem],
                    queue: TaskQueue) -> dict[str, Any]:
    """Applies the plans one poll decided for many users of one tenant together (issue 14):

    1. ONE transaction claims them all: the tenant, the users (tenant isolation), missing rows created
       and the applied states read in one statement each, then ONE compare-and-set claim statement for
       every user whose state is still at the version its plan was made from (the others are dropped:
       superseded, exactly as the single update drops them).
    2. The users' STARFACE requests run concurrently, each through the PBX's gate (``PbxLimits``: at
       most N in flight and M per second for the PBX, over all workers; less while it struggles).
    3. ONE transaction records every written user (one statement), their audit rows and the health
       counter; claims of users whose write failed are released in the same transaction.
    4. A user whose write failed transiently gets its own update task (retries per user, with backoff);
       users not started within BATCH_TIME_BUDGET_S go on in a new batch; the "update queued" marks of
       both stay until that task has run. Returns the summary with ``retrying`` (those users).
    """
    plans: dict[int, tuple[StarfacePlan, dict[str, Any], int | None]] = {}
    for link_id, plan_json, version in items:
        plans.setdefault(link_id, (StarfacePlan.from_json(plan_json), plan_json, version))
    claim_id = uuid.uuid4().hex
    fence = WriteFence(UPDATE_CLAIM_LEASE)
    now = utcnow()
    release = any(plan.release for plan, _, _ in plans.values())
    work: dict[int, tuple[int, StarfaceApplied, dict[str, Any] | None]] = {}
    with transaction(runtime.sessions) as session:
        # The tenant as this process keeps it while its configuration is unchanged (one statement, no ORM
        # load: loading it was a twenty-fifth of an apply worker's CPU in a burst); a release also runs
        # for a tenant that was just disabled, loaded then.
        kept = runtime.tenant_policies.load(session, [tenant_id]).get(tenant_id)
        if kept is None and release:
            disabled = load_tenant(session, tenant_id, include_disabled=True)
            kept = (disabled, policy_for(disabled)) if disabled is not None else None
        if kept is None:
            return {"dropped": len(plans), "retrying": []}
        tenant, policy = kept
        accounts = dict(session.execute(
            select(UserLink.id, UserLink.starface_account_id)
            .where(UserLink.id.in_(list(plans)), UserLink.tenant_id == tenant_id)).all())
        ensure_rows(session, tenant_id=tenant_id, target=Target.STARFACE.value,
                    user_link_ids=[i for i, (_, _, v) in plans.items() if v is None and i in accounts])
        rows = load_applied_states(session, list(accounts))
        candidates = []
        for link_id in accounts:
            _, plan_json, version = plans[link_id]
            row = rows.get((link_id, Target.STARFACE.value))
            if row is None or row.version != (version or 1):
                continue  # superseded: another update or a release changed the state since the poll
            candidates.append((link_id, row.version, plan_json))
            work[link_id] = (accounts[link_id], StarfaceApplied.from_json(row.fields),
                             row.claim_fields)
        won = claim_many(session, target=Target.STARFACE.value, items=candidates, claim_id=claim_id,
                         expires_at=now + UPDATE_CLAIM_LEASE, now=now)
        work = {link_id: entry for link_id, entry in work.items() if link_id in won}
        if not work:
            return {"dropped": len(plans), "retrying": []}
        rest = runtime.starface(tenant)
        bridge = runtime.bridge(tenant) if (policy.chat_enabled or policy.telephony_enabled) else None
        gate = pbx_gate(runtime, tenant)
    chat_reads = None
    if bridge is not None and policy.chat_enabled:
        chat_reads = ChatReadAhead(bridge, [account for account, _, _ in work.values()],
                                   chat_read_ahead_users(gate.limits))

    own = OwnWrites(runtime.coordination, tenant_id)
    started = time.monotonic()

    def one(link_id: int) -> tuple[StarfaceReading, StarfaceWrites] | StarfaceError | None:
        if time.monotonic() - started > BATCH_TIME_BUDGET_S:
            return None  # not started: handed on to a new batch, so the task ends well within its limit
        account, applied, previous_intent = work[link_id]
        try:
            return read_and_write(plans[link_id][0], account, applied, previous_intent, policy, rest, bridge,
                                  gate, fence, chat_reads, own)
        except StarfaceError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - not the PBX's answer: this user retries alone
            log.warning("tenant %s user %s: update interrupted (%s); retried alone", tenant_id, link_id,
                        type(exc).__name__)
            return _Interrupted(f"update interrupted by {type(exc).__name__}")

    with ThreadPoolExecutor(max_workers=min(len(work), gate.limits.max_in_flight),
                            thread_name_prefix="starface") as pool:
        outcomes = dict(zip(work, pool.map(one, work), strict=True))

    done = {i: o for i, o in outcomes.items() if isinstance(o, tuple)}
    failed = {i: o for i, o in outcomes.items() if isinstance(o, StarfaceError)}
    deferred = [i for i, o in outcomes.items() if o is None]
    applied_at = utcnow()

    def record(session: Session) -> tuple[set[int], int, dict[int, int | None], list[StarfaceError]]:
        completions = [(link_id, writes.applied.to_json(), owned_fields(writes.applied),
                        plans[link_id][0].observed_at, plans[link_id][0].sequence_number)
                       for link_id, (_, writes) in done.items()]
        recorded = complete_claims(session, target=Target.STARFACE.value, claim_id=claim_id, now=applied_at,
                                   items=completions)
        changed = 0
        entries: list[dict[str, Any]] = []
        for link_id, (reading, writes) in done.items():
            _, applied, previous_intent = work[link_id]
            if link_id not in recorded:
                continue
            plan = plans[link_id][0]
            rows = audit_rows(recovered_writes(applied, previous_intent, reading, writes), _written(writes),
                              _cause(plan))
            entries += [{"tenant_id": tenant_id, "user_link_id": link_id, "target": Target.STARFACE.value,
                         "before": {"dnd": reading.dnd}, "after": after, "cause": why,
                         "observed_at": plan.observed_at, "applied_at": applied_at} for after, why in rows]
            changed += 1 if rows else 0
        if entries:
            append_changes(session, entries)
            health.record_changes(session, tenant_id, len(entries))
        next_versions = release_claims(session, target=Target.STARFACE.value, claim_id=claim_id,
                                       user_link_ids=[*failed, *deferred])
        permanent = [exc for exc in failed.values() if exc.permanent]
        if permanent:
            health.record_error(session, tenant_id, type(permanent[0]).__name__, str(permanent[0]),
                                poll=False)
        return recorded, changed, next_versions, permanent

    recorded, changed, next_versions, _ = durably(runtime, record)
    if len(recorded) < len(done):
        log.warning("tenant %s: %d claims expired before the writes were recorded", tenant_id,
                    len(done) - len(recorded))
    retrying = []
    for link_id, exc in failed.items():
        if exc.permanent:
            log.error("tenant %s user %s: STARFACE refused the update: %s", tenant_id, link_id, exc)
        elif next_versions.get(link_id) is not None:
            queue.apply(tenant_id, link_id, plans[link_id][1], next_versions[link_id],
                        countdown_s=BATCH_RETRY_DELAY_S)
            retrying.append(link_id)
    later = [(link_id, plans[link_id][1], next_versions[link_id]) for link_id in deferred
             if next_versions.get(link_id) is not None]
    if later:
        queue.apply_batch(tenant_id, later)
        retrying.extend(link_id for link_id, _, _ in later)
    return {"users": len(plans), "claimed": len(work), "written": changed, "failed": len(failed),
            "deferred": len(later),
            "retrying": retrying, "pbx_wait_s": round(gate.waited_s, 3)}
