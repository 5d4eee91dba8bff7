"""The dry run: what a tenant's first cycle would write, computed from live reads, nothing written -
Microsoft presence of the linked users, their STARFACE DND, and the tenant's rule table and options.

It reads as the sync reads and under the sync's limits: its Graph request is taken from the tenant's
budget and is not sent while Microsoft's Retry-After blocks the tenant (a 429 it gets blocks the
tenant's polls too; design.md, Graph budget), and its STARFACE reads go one after another through the
PBX's gate, so a dry run during a burst waits for slots instead of pushing the PBX past its limits
(issue 14). The clients are the sync's own (sync/runtime.py): a URL the sync refuses (plain http in
production) is refused here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.graph import GraphError, GraphThrottled, Presence
from connectors.starface import StarfaceError
from models import Tenant, UserLink
from models.crypto import SecretBoxError
from models.secrets import read_secrets
from presence.categories import categorize
from presence.linking import LinkState
from presence.policy import DndAction
from sync.apply import pbx_gate
from sync.runtime import Runtime
from tenants.live_checks import hide
from tenants.policy import rules_of
from tenants.provider_app import ProviderAppMissing

#: Users a dry run shows (the first by login id): each costs the PBX a request at its gate's pace.
MAX_DRY_RUN_USERS = 200


@dataclass(frozen=True)
class PlannedWrite:
    login_id: str
    display_name: str
    teams_status: str
    category: str
    dnd_now: bool | None
    dnd_write: str  # "set" / "clear" / "none"
    chat_text: str | None


def dry_run(runtime: Runtime, session: Session, tenant: Tenant) -> tuple[list[PlannedWrite], str | None]:
    """(the writes the first cycle would make per linked user, an error message or None). Reads only."""
    try:
        secrets = read_secrets(tenant, runtime.box)
    except SecretBoxError as exc:
        return [], str(exc)
    hidden = [s for s in (secrets.ms_client_secret, secrets.starface_password, secrets.bridge_secret) if s]
    links = list(session.scalars(select(UserLink).where(
        UserLink.tenant_id == tenant.id, UserLink.state == LinkState.LINKED.value)
        .order_by(UserLink.login_id).limit(MAX_DRY_RUN_USERS)))
    if not links:
        return [], "no linked users yet: run the directory sync (User selection) first"
    coordination = runtime.coordination
    if (blocked_s := coordination.blocked_for(tenant.id)) > 0:
        return [], (f"Microsoft Graph asked this tenant to wait (Retry-After): run the dry run again in "
                    f"{math.ceil(blocked_s)} s")
    if (wait_s := coordination.take(tenant.id)) > 0:
        return [], (f"the tenant's Graph budget is used up by its polls: run the dry run again in "
                    f"{math.ceil(wait_s)} s")
    try:
        presences = {p.user_id: p for p in
                     runtime.graph(tenant).get_presences([link.entra_object_id or "" for link in links])}
        return _plan(runtime, tenant, links, presences), None
    except GraphThrottled as exc:
        coordination.block(tenant.id, exc.retry_after)
        return [], (f"Microsoft Graph throttled this tenant (429): run the dry run again in "
                    f"{math.ceil(exc.retry_after)} s")
    except ProviderAppMissing as missing:
        return [], str(missing)
    except (GraphError, StarfaceError, OSError, ValueError) as exc:
        return [], hide(str(exc), hidden)


def _plan(runtime: Runtime, tenant: Tenant, links: list[UserLink],
          presences: dict[str, Presence]) -> list[PlannedWrite]:
    """Per linked user with a presence: its category, its rule's DND and chat text, and (when the tenant
    sets DND) its DND now, read through the PBX's gate."""
    rules = rules_of(tenant)
    rest = runtime.starface(tenant) if tenant.set_dnd else None
    planned = []
    with pbx_gate(runtime, tenant).lane() as lane:
        for link in links:
            presence = presences.get((link.entra_object_id or "").lower())
            if presence is None:
                continue
            category = categorize(presence.availability, presence.activity, presence.out_of_office)
            rule = rules[category]
            dnd_now: bool | None = None
            if rest is not None:
                with lane.request():
                    dnd_now = rest.get_dnd(link.starface_account_id)
            # First cycle: nothing is ours yet, so "clear" clears nothing we set.
            dnd_write = "set" if rest is not None and rule.dnd is DndAction.SET and not dnd_now else "none"
            chat = rule.chat_text if tenant.set_chat_text and tenant.has_bridge else None
            planned.append(PlannedWrite(link.login_id, link.display_name or "",
                                        f"{presence.availability}/{presence.activity}", category.value,
                                        dnd_now, dnd_write, chat))
    return planned
