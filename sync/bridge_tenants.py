"""What the webhook receiver needs of a tenant (enabled, bridge secret), kept for a few seconds per process.

A PBX sends its events one after another, a busy one dozens a second: reading the tenant's row and
decrypting its bridge secret for each was a fifth of the web app's CPU in a burst (issue 14). A tenant is
kept for ``KEEP_S``; what that costs in freshness is bounded:

- A rotated secret counts at once: a request that fails the kept secret is checked against the stored
  one (``reload``). The secret it replaces stays valid in this process for at most ``KEEP_S``.
- A tenant disabled or deleted meanwhile has its events queued for at most ``KEEP_S`` more; the event task
  ignores a tenant that is gone or disabled (sync/events.py).
- A tenant not found (or without a bridge) is kept as such too, so an unknown tenant's request costs what
  a known one's does and its answer's timing does not tell the two apart (sync/webhook.py, step 1). A
  tenant created meanwhile has its first events refused for at most ``KEEP_S``; the bridge retries a
  refused event for 10 minutes (starface-bridge.md), so they arrive.
- At most ``MOST_KEPT`` tenants are kept: requests for made-up tenant ids cannot fill the memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.secrets import read_bridge_secret

if TYPE_CHECKING:
    from sync.runtime import Runtime

#: How long a tenant's receiving facts are kept (see the module docstring).
KEEP_S = 5.0
#: The most tenants kept at once; beyond it the lapsed ones are dropped, or all when none has lapsed.
MOST_KEPT = 20_000


@dataclass(frozen=True)
class BridgeTenant:
    """What the receiver needs of a tenant, read in one short statement (the secret stays in this process)."""

    id: int
    enabled: bool
    bridge_secret: str

    def __repr__(self) -> str:
        return f"BridgeTenant(id={self.id!r}, enabled={self.enabled!r})"


def load_bridge_tenant(runtime: Runtime, tenant_id: int) -> BridgeTenant | None:
    """The tenant as stored now; None when it does not exist or has no bridge."""
    with runtime.engine.connect() as connection:
        found = read_bridge_secret(connection, tenant_id, runtime.box)
    if found is None:
        return None
    enabled, secret = found
    return BridgeTenant(id=tenant_id, enabled=enabled, bridge_secret=secret) if secret else None


class BridgeTenants:
    """The receiving facts of tenants, kept for ``keep_s`` in this process (see the module docstring)."""

    def __init__(self, keep_s: float = KEEP_S, clock: Callable[[], float] = time.monotonic,
                 most_kept: int = MOST_KEPT) -> None:
        self._keep_s = keep_s
        self._clock = clock
        self._most_kept = most_kept
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[float, BridgeTenant | None]] = {}

    def get(self, runtime: Runtime, tenant_id: int) -> tuple[BridgeTenant | None, bool]:
        """The tenant (None: not found or no bridge), and whether it was kept (not read just now)."""
        now = self._clock()
        with self._lock:
            kept = self._kept.get(tenant_id)
        if kept is not None and now - kept[0] < self._keep_s:
            return kept[1], True
        return self.reload(runtime, tenant_id), False

    def reload(self, runtime: Runtime, tenant_id: int) -> BridgeTenant | None:
        """The tenant as stored now, kept from now on."""
        read_at = self._clock()
        tenant = load_bridge_tenant(runtime, tenant_id)
        with self._lock:
            if len(self._kept) >= self._most_kept:
                self._kept = {key: entry for key, entry in self._kept.items()
                              if read_at - entry[0] < self._keep_s}
                if len(self._kept) >= self._most_kept:
                    self._kept = {}
            self._kept[tenant_id] = (read_at, tenant)
        return tenant

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
