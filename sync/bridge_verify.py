"""`teamsconnect bridge verify` as a use case of the sync: the conformance kit (tenants/bridge_check.py)
with each of its bridge requests in a slot of the PBX's gate, so an admin's check during a burst keeps the
PBX within its limits, and the tenant marked "verifying" meanwhile (sync/bridge_probe.py)."""

from __future__ import annotations

from models import Tenant
from models.secrets import TenantSecrets
from sync.apply import pbx_gate
from sync.bridge_probe import mark_verifying, wait_test_event
from sync.runtime import Runtime
from tenants.bridge_check import Clause, verify_bridge


def run_bridge_verify(runtime: Runtime, tenant: Tenant, secrets: TenantSecrets, *, webhook_url: str,
                      test_user: str | None, timeout: float, event_timeout: float) -> list[Clause]:
    """Every clause against the tenant's bridge; the test event is awaited through the coordination the
    web app's receiver notes it in."""
    mark_verifying(runtime.coordination, tenant.id, True)
    try:
        return verify_bridge(
            tenant, secrets, webhook_url=webhook_url, test_user=test_user,
            wait_test_event=lambda nonce, wait: wait_test_event(runtime.coordination, tenant.id, nonce, wait),
            verify=runtime.verify, timeout=timeout, event_timeout=event_timeout,
            pbx_slot=pbx_gate(runtime, tenant).request)
    finally:
        mark_verifying(runtime.coordination, tenant.id, False)
