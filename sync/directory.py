"""Directory sync for one tenant: STARFACE users + selection + Graph look-ups by e-mail -> user links.

Upserts one ``UserLink`` per STARFACE user with its state and reason (presence/linking.py decides);
users gone from STARFACE are kept as ``excluded`` with the reason, so their history stays readable.

A user who stops being synced (excluded, e-mail changed, ...) must not be left with a DND or chat text of
ours: for each such user who holds one, an update that releases only what we own is queued.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from models import Tenant, UserLink
from models.db import transaction
from presence.linking import (
    DirectoryPerson,
    EntraCandidate,
    LinkDecision,
    LinkState,
    SelectionMode,
    emails_to_resolve,
    link_users,
    select_users,
)
from sync.ports import TaskQueue
from sync.release import queue_releases
from sync.rivals import check_shared
from sync.runtime import Runtime

log = logging.getLogger(__name__)


def sync_directory(runtime: Runtime, tenant: Tenant, queue: TaskQueue) -> dict[str, Any]:
    """Reads both directories and stores every user's link state; returns counts per state."""
    rest = runtime.starface(tenant)
    people = [
        DirectoryPerson(u.id, u.login, u.email or "", f"{u.first_name} {u.family_name}".strip())
        for u in rest.list_users()
    ]
    mode = SelectionMode(tenant.selection_mode)
    members: list[int] = []
    if mode is SelectionMode.GROUP_PLUS_LISTED and tenant.starface_group_id is not None:
        members = rest.group_member_ids(tenant.starface_group_id)
    selection = select_users(people, mode, tenant.login_ids or [], members, tenant.starface_group_id)
    resolved_raw = runtime.graph(tenant).find_users_by_email(emails_to_resolve(selection.selected))
    resolved = {
        email: [EntraCandidate(user.id, user.display_name) for user in users]
        for email, users in resolved_raw.items()
    }
    decisions = link_users(selection.selected, resolved) + selection.excluded
    unlinked = store_links(runtime, tenant.id, decisions)
    check_shared(runtime, tenant.id)  # another tenant on this PBX or with these Entra users
    released = queue_releases(runtime, queue, tenant.id, unlinked, "released: user no longer synced")
    counts: dict[str, Any] = {}
    for decision in decisions:
        counts[decision.state.value] = counts.get(decision.state.value, 0) + 1
    if released:
        counts["released"] = released
    if selection.unknown_login_ids:
        counts["unknown_login_ids"] = selection.unknown_login_ids
        log.warning("tenant %s: listed login ids not found in STARFACE: %s", tenant.id,
                    ", ".join(selection.unknown_login_ids))
    return counts


def store_links(runtime: Runtime, tenant_id: int, decisions: list[LinkDecision]) -> list[int]:
    """Upserts the tenant's user links in one transaction (existing rows keep their ids and history).

    Returns the ids of links that were linked before and are not any more.
    """
    unlinked: list[int] = []
    with transaction(runtime.sessions) as session:
        existing = {
            link.starface_account_id: link
            for link in session.scalars(select(UserLink).where(UserLink.tenant_id == tenant_id))
        }
        seen = set()
        for decision in decisions:
            seen.add(decision.account_id)
            link = existing.get(decision.account_id)
            was_linked = link is not None and link.state == LinkState.LINKED.value
            if link is not None and was_linked and decision.state != LinkState.LINKED:
                unlinked.append(link.id)
            if link is None:
                link = UserLink(tenant_id=tenant_id, starface_account_id=decision.account_id)
                session.add(link)
            link.login_id = decision.login_id
            link.email = decision.email
            link.display_name = decision.display_name
            link.state = decision.state.value
            link.reason = decision.reason
            link.entra_object_id = decision.entra_object_id
        for account_id, link in existing.items():
            if account_id not in seen:
                if link.state == LinkState.LINKED.value:
                    unlinked.append(link.id)
                link.state = LinkState.EXCLUDED.value
                link.reason = "no longer a user in STARFACE"
                link.entra_object_id = None
    return unlinked

