"""The one mapping from a stored tenant to the engine's `TenantPolicy` (its options and rule table)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from models import Tenant
from presence import Rule, TeamsPresenceMode, TenantPolicy
from presence.categories import Category
from presence.policy import ChatSymbol, DndAction, overlay_rules
from tenants.schema import OPTION_FIELDS


class RuleRow(Protocol):
    """A stored rule: a `StatusRule` or a plain result row of its columns."""

    @property
    def category(self) -> str: ...
    @property
    def dnd_action(self) -> str: ...
    @property
    def chat_text(self) -> str | None: ...
    @property
    def chat_symbol(self) -> str | None: ...


def rules_of(tenant: Tenant, rows: Iterable[RuleRow] | None = None) -> Mapping[Category, Rule]:
    """The tenant's rule table: its stored rows (``tenant.rules`` unless given) over the defaults."""
    return overlay_rules({
        Category(row.category): Rule(DndAction(row.dnd_action), row.chat_text,
                                     None if row.chat_symbol is None else ChatSymbol(row.chat_symbol))
        for row in (tenant.rules if rows is None else rows)
    })


def policy_for(tenant: Tenant, rule_rows: Iterable[RuleRow] | None = None) -> TenantPolicy:
    """The engine's view of a tenant: its options, its tier and its rule table (from ``rule_rows`` when
    the caller read them as plain rows, else from ``tenant.rules``)."""
    options = {name: getattr(tenant, name) for name in OPTION_FIELDS}
    options["teams_presence_mode"] = TeamsPresenceMode(options["teams_presence_mode"])
    return TenantPolicy(**options, has_bridge=tenant.has_bridge, rules=rules_of(tenant, rule_rows))
