"""The dry run: what a tenant's first cycle would write, computed from live reads, nothing written -
Microsoft presence of the linked users, their STARFACE DND, and the tenant's rule table and options.

It reads as the sync reads and under the sync's limits: its Graph request is taken from the tenant's
budget and is not sent while Microsoft's Retry-After blocks the tenant (a 429 it gets blocks the
tenant's polls too; design.md, Graph budget), and its STARFACE reads go one after another through the
PBX's gate, so a dry run during a burst waits for slots instead of pushing the PBX past its limits
(issue 14); the person waiting for it is not kept longer than DRY_RUN_PBX_S: the DND of users not read
by then is shown as not read, with a note saying why. The clients are the sync's own (sync/runtime.py):
a URL the sync refuses (plain http in production) is refused here too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
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
from sync.coordination import PbxBusy, admit
from sync.runtime import Runtime
from tenants.diagnostics import hide_secrets
from tenants.policy import rules_of
from tenants.provider_app import ProviderAppMissing

#: Users a dry run shows (the first by login id): each costs the PBX a request at its gate's pace.
MAX_DRY_RUN_USERS = 200
#: How long a dry run reads DND from the PBX (200 users take about 10 s at the default 20 requests/s).
DRY_RUN_PBX_S = 20.0
#: Why the tenant may not read Graph now (sync/coordination.py: admit), as the admin reads it.
_REFUSED = {"throttled": "Microsoft Graph asked this tenant to wait (Retry-After)",
            "budget": "the tenant's Graph budget is used up by its polls"}


@dataclass(frozen=True)
class PlannedWrite:
    login_id: str
    display_name: str
    teams_status: str
    category: str
    dnd_now: bool | None
    dnd_write: str  # "set" / "none", or "unknown" when the PBX was too busy to read the DND in time
    chat_text: str | None


def dry_run(runtime: Runtime, session: Session, tenant: Tenant,
            pbx_s: float = DRY_RUN_PBX_S) -> tuple[list[PlannedWrite], str | None]:
    """(the writes the first cycle would make per linked user, a message or None). Reads only. The
    message explains a failure (no writes) or, beside the writes, the users whose DND was not read."""
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
    try:
        refusal = admit(coordination, [tenant.id])[0]
    except redis.RedisError:
        return [], ("the service's coordination store (Redis) does not answer, so the tenant's Graph budget "
                    "cannot be kept: run the dry run again once it is back")
    if refusal is not None:
        reason, wait_s = refusal
        return [], f"{_REFUSED[reason]}: run the dry run again in {math.ceil(wait_s)} s"
    try:
        presences = {p.user_id: p for p in
                     runtime.graph(tenant).get_presences([link.entra_object_id or "" for link in links])}
        planned = _plan(runtime, tenant, links, presences, pbx_s)
    except GraphThrottled as exc:
        coordination.block(tenant.id, exc.retry_after)
        return [], (f"Microsoft Graph throttled this tenant (429): run the dry run again in "
                    f"{math.ceil(exc.retry_after)} s")
    except ProviderAppMissing as missing:
        return [], str(missing)
    except (GraphError, StarfaceError, OSError, ValueError) as exc:
        return [], hide_secrets(str(exc), hidden)
    unread = sum(write.dnd_write == "unknown" for write in planned)
    if unread:
        return planned, (f"the PBX was busy (its request slots in use by the sync): whether {unread} of "
                         f"{len(planned)} users need a DND write is not known, their DND was not read within "
                         f"{pbx_s:.0f} s; run the dry run again later")
    return planned, None


def _plan(runtime: Runtime, tenant: Tenant, links: list[UserLink], presences: dict[str, Presence],
          pbx_s: float) -> list[PlannedWrite]:
    """Per linked user with a presence: its category, its rule's DND and chat text, and (when the tenant
    sets DND) its DND now, read through the PBX's gate for at most ``pbx_s``."""
    rules = rules_of(tenant)
    rest = runtime.starface(tenant) if tenant.set_dnd else None
    planned = []
    gate = pbx_gate(runtime, tenant)
    busy = False
    with gate.lane(deadline=time.monotonic() + pbx_s) as lane:
        for link in links:
            presence = presences.get((link.entra_object_id or "").lower())
            if presence is None:
                continue
            category = categorize(presence.availability, presence.activity, presence.out_of_office)
            rule = rules[category]
            dnd_now: bool | None = None
            if rest is not None and not busy:
                try:
                    with lane.request():
                        dnd_now = rest.get_dnd(link.starface_account_id)
                except PbxBusy:
                    busy = True
            # First cycle: nothing is ours yet, so "clear" clears nothing we set.
            if rest is None or rule.dnd is not DndAction.SET or dnd_now:
                dnd_write = "none"
            else:
                dnd_write = "unknown" if busy else "set"
            chat = rule.chat_text if tenant.set_chat_text and tenant.has_bridge else None
            planned.append(PlannedWrite(link.login_id, link.display_name or "",
                                        f"{presence.availability}/{presence.activity}", category.value,
                                        dnd_now, dnd_write, chat))
    return planned
