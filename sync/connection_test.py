"""Test connection: the tenant's checks (tenants/diagnostics.py) under the sync's limits - each STARFACE
check in a slot of the PBX's gate, so an admin's test during a burst keeps the PBX within its limits,
and no presence read while Microsoft's Retry-After blocks the tenant."""

from __future__ import annotations

import logging

import redis
from sqlalchemy.orm import Session

from models import Tenant
from sync.apply import pbx_gate
from sync.runtime import Runtime
from tenants.diagnostics import CheckResult, run_checks

log = logging.getLogger(__name__)


def run_connection_test(runtime: Runtime, session: Session, tenant: Tenant,
                        timeout: float) -> list[CheckResult]:
    """The checks of ``run_checks`` with the runtime's settings, provider app and limits."""
    provider = runtime.provider_app if tenant.uses_provider_app else None
    try:
        blocked_s = runtime.coordination.blocked_for(tenant.id)
    except redis.RedisError:  # the shared store is down: test anyway, as the PBX gate goes on without it
        log.warning("tenant %s: coordination unreachable, connection test without the Retry-After check",
                    tenant.id)
        blocked_s = 0.0
    return run_checks(session, tenant, runtime.box, runtime.verify, timeout, provider,
                      runtime.settings.egress_ip_list, pbx_slot=pbx_gate(runtime, tenant).request,
                      graph_blocked_s=blocked_s)
