"""Settled users: the poll's "nothing to write" answers, remembered per worker process.

Every cycle a poll decides for every user of its batch, and nearly every answer is "nothing to write".
That answer depends only on the tenant's policy, the user's Graph presence (with its sequenceNumber) and
the user's two applied-state rows - unless the observation time takes part, which
`presence.decided_without_clock` rules out. A row is named by its id and version: every change of it
(a write, a claim, its release) bumps the version (models/store.py), and PostgreSQL never hands a
deleted row's id to a new one. So when a user's presence and both rows' (id, version) are what they were
when the answer was "nothing", deciding again would give "nothing" again, and the poll skips the user
without reading the rows' documents or deciding (issue 14: skip unchanged users by sequenceNumber).

The memo also keeps, for QUEUED_RECHECK_S, the users whose update the poll queued (or found queued): in a
burst their presence and rows stay as they were until the update is applied, and deciding them again every
cycle (row documents, decision, a Redis "update queued" check) only found the update still queued. Once
the update changes a row, or the presence changes, they are decided at once; if the update is lost
without changing a row (a task dropped), they are decided again after QUEUED_RECHECK_S at the latest,
and queued again if their "update queued" mark has gone.

A change of the tenant's policy (rules, options, bridge) forgets the tenant's answers. The memo is per
process and bounded (`TEAMSCONNECT_SETTLED_USERS_MAX`, about 500 bytes per user measured with its
strings): once full it takes no one new, so a process that polls more users than that decides the rest
every cycle, as it would without the memo.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.graph import Presence
from models.store import AppliedHeads
from presence import TenantPolicy

#: What the answer was decided from: Entra id, sequenceNumber, availability, activity, out of office, and
#: (row id, version) of the STARFACE and of the Teams applied-state row (None where there is none).
SettledKey = tuple[str, str | None, str, str, bool, int | None, int | None, int | None, int | None]

#: How long a user whose update is queued is not decided again while its presence and rows are unchanged:
#: the longest a lost update waits for a new one beyond the cycle (well below APPLY_EXPIRES_S, the life of
#: the "update queued" mark).
QUEUED_RECHECK_S = 5.0


def settled_key(entra_id: str, presence: Presence, heads: AppliedHeads) -> SettledKey:
    return (entra_id, presence.sequence_number, presence.availability, presence.activity,
            presence.out_of_office, *heads)


@dataclass
class SettledUsers:
    """Per tenant: the policy the answers were decided under, and per user link the key of its answer."""

    max_users: int  # settled_users_max of the settings
    clock: Callable[[], float] = time.monotonic
    _tenants: dict[int, tuple[TenantPolicy, dict[int, SettledKey], dict[int, tuple[SettledKey, float]]]] = \
        field(default_factory=dict)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def of_tenant(self, tenant_id: int, policy: TenantPolicy) -> TenantSettled:
        """The tenant's remembered answers, forgotten first if they were decided under another policy."""
        with self._lock:
            entry = self._tenants.get(tenant_id)
            if entry is None or entry[0] != policy:
                if entry is not None:
                    self._count -= len(entry[1]) + len(entry[2])
                entry = (policy, {}, {})
                self._tenants[tenant_id] = entry
            return TenantSettled(self, entry[1], entry[2])

    def take_room(self) -> bool:
        """Counts one more remembered user, unless the memo is full (then False)."""
        with self._lock:
            if self._count >= self.max_users:
                return False
            self._count += 1
            return True

    @property
    def users(self) -> int:
        """Users remembered in this process (for tests and benchmarks)."""
        return self._count


@dataclass
class TenantSettled:
    """One tenant's remembered answers (see the module docstring)."""

    owner: SettledUsers
    keys: dict[int, SettledKey]
    #: Users whose update is queued: the key it was decided for, and until when (owner's clock).
    queued: dict[int, tuple[SettledKey, float]]

    def holds(self, link_id: int, key: SettledKey) -> bool:
        """True if this user's answer was "nothing to write" for exactly this presence and these rows."""
        return self.keys.get(link_id) == key

    def remember(self, link_id: int, key: SettledKey) -> None:
        """Records a "nothing to write" answer (a newer one replaces the user's older one)."""
        if self.queued.pop(link_id, None) is not None or link_id in self.keys or self.owner.take_room():
            self.keys[link_id] = key

    def is_queued(self, link_id: int, key: SettledKey) -> bool:
        """True if this user's update was queued for exactly this presence and these rows, less than
        QUEUED_RECHECK_S ago."""
        entry = self.queued.get(link_id)
        return entry is not None and entry[0] == key and self.owner.clock() < entry[1]

    def remember_queued(self, keys: dict[int, SettledKey]) -> None:
        """Records users whose update is queued (see the module docstring), for QUEUED_RECHECK_S."""
        until = self.owner.clock() + QUEUED_RECHECK_S
        for link_id, key in keys.items():
            if self.keys.pop(link_id, None) is not None or link_id in self.queued or self.owner.take_room():
                self.queued[link_id] = (key, until)
