"""Per worker process: each polled tenant as last loaded, with its engine policy, kept while its stored
configuration is unchanged.

Every poll needs the tenant (for its Graph client) and its policy (options and rule table). Loading them
took two statements and an ORM object per batch, and building the policy on top: a fifth of a steady
poll's CPU. Now one statement reads a fingerprint of each tenant's whole configuration (its row but for
the scheduler's columns, and its rule rows; ``tenants.service.tenant_fingerprints``), and the tenant is
loaded again only when that changed. The fingerprint is computed by PostgreSQL from every column, so no
writer - the CLI, the console, a directory sync, a key rotation - can change a tenant without the next
poll seeing it. On SQLite (the embedded mode) there is no fingerprint and the tenants are loaded each time.

The tenants handed out are detached from any session: read their columns, never their relationships (to
change a tenant, load it in the session).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from models import Tenant
from presence import TenantPolicy
from tenants.service import load_tenant_policies, tenant_fingerprints

#: Tenants one process keeps at most (5.8 KB each with their policies, measured: 58 MB at most); past that
#: it starts again from empty. Route tenants to worker pools (docs/capacity.md) so none polls more.
MAX_TENANTS = 10_000

Loaded = dict[int, tuple[Tenant, TenantPolicy]]


@dataclass
class TenantPolicies:
    """Tenant id -> (fingerprint, tenant, policy) of this process, shared by its threads."""

    max_tenants: int = MAX_TENANTS
    _entries: dict[int, tuple[str, Tenant, TenantPolicy]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, session: Session, tenant_ids: Sequence[int]) -> Loaded:
        """The enabled ones of these tenants with their policies: one statement when none changed, two
        more for those that did (``load_tenant_policies``)."""
        fingerprints = tenant_fingerprints(session, tenant_ids)
        if fingerprints is None:
            return load_tenant_policies(session, tenant_ids)
        found: Loaded = {}
        with self._lock:
            for tenant_id, fingerprint in fingerprints.items():
                entry = self._entries.get(tenant_id)
                if entry is not None and entry[0] == fingerprint:
                    found[tenant_id] = entry[1], entry[2]
        changed = [tenant_id for tenant_id in fingerprints if tenant_id not in found]
        if not changed:
            return found
        loaded = load_tenant_policies(session, changed)
        for tenant, _ in loaded.values():
            # Out of the session at once: nothing done in it later (an UPDATE that expires attributes, a
            # rollback) may touch an object the process keeps.
            session.expunge(tenant)
        with self._lock:
            if len(self._entries.keys() | loaded.keys()) > self.max_tenants:
                self._entries.clear()
            for tenant_id, (tenant, policy) in loaded.items():
                # Stored under the fingerprint read first: if the tenant changed in between, what was
                # loaded is newer than it says, and the next poll loads it once more.
                self._entries[tenant_id] = (fingerprints[tenant_id], tenant, policy)
        return {**found, **loaded}
