"""Test connection: the tenant's checks (tenants/diagnostics.py) under the sync's limits - each STARFACE
check in a slot of the PBX's gate, so an admin's test during a burst keeps the PBX within its limits,
and no presence read while Microsoft's Retry-After blocks the tenant. The wizard's check of STARFACE
credentials not stored yet keeps the PBX's limits too (`check_new_starface`)."""

from __future__ import annotations

import logging

import redis
from sqlalchemy.orm import Session

from models import Tenant
from sync.apply import pbx_gate, pbx_gate_at
from sync.runtime import Runtime
from tenants.diagnostics import CheckResult, run_checks
from tenants.live_checks import check_starface

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


def check_new_starface(runtime: Runtime, base_url: str, login_id: str, password: str,
                       timeout: float) -> CheckResult:
    """The wizard's STARFACE check (admin login and rights) of credentials not stored yet, in a slot of
    the gate of the PBX at ``base_url`` (as validated for storing): a PBX that already serves tenants is
    sent no more at once than its limits allow."""
    with pbx_gate_at(runtime, base_url).request():
        return check_starface(base_url, login_id, password, runtime.verify, timeout)
