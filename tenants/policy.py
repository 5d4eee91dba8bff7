"""The one mapping from a stored tenant to the engine's `TenantPolicy` (its options and rule table)."""

from __future__ import annotations

from collections.abc import Mapping

from models import Tenant
from presence import Rule, TeamsPresenceMode, TenantPolicy
from presence.categories import Category
from presence.policy import ChatSymbol, DndAction, overlay_rules
from tenants.schema import OPTION_FIELDS


def rules_of(tenant: Tenant) -> Mapping[Category, Rule]:
    """The tenant's rule table: its stored rows over the defaults."""
    return overlay_rules({
        Category(row.category): Rule(DndAction(row.dnd_action), row.chat_text,
                                     None if row.chat_symbol is None else ChatSymbol(row.chat_symbol))
        for row in tenant.rules
    })


def policy_for(tenant: Tenant) -> TenantPolicy:
    """The engine's view of a tenant: its options, its tier and its rule table."""
    options = {name: getattr(tenant, name) for name in OPTION_FIELDS}
    options["teams_presence_mode"] = TeamsPresenceMode(options["teams_presence_mode"])
    return TenantPolicy(**options, has_bridge=tenant.has_bridge, rules=rules_of(tenant))
