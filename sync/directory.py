"""Directory sync for one tenant: STARFACE users + selection + Graph look-ups by e-mail -> user links.

Upserts one ``UserLink`` per STARFACE user with its state and reason (presence/linking.py decides);
users gone from STARFACE are kept as ``excluded`` with the reason, so their history stays readable.

A user who stops being synced (excluded, e-mail changed, ...) must not be left with a DND or chat text of
ours: for each such user who holds one, an update that releases only what we own is queued.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from connectors.starface import StarfaceGroup, StarfaceNotFound
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
from sync.apply import pbx_gate
from sync.ports import TaskQueue
from sync.release import queue_releases
from sync.rivals import check_shared
from sync.runtime import Runtime
from tenants.groups import matching

log = logging.getLogger(__name__)


def sync_directory(runtime: Runtime, tenant: Tenant, queue: TaskQueue) -> dict[str, Any]:
    """Reads both directories and stores every user's link state; returns counts per state."""
    rest = runtime.starface(tenant)
    mode = SelectionMode(tenant.selection_mode)
    members: list[int] = []
    group_id = tenant.starface_group_id
    gate = pbx_gate(runtime, tenant)  # the PBX's limits hold for its directory reads too
    with gate.request(bulk=True):
        starface_users = rest.list_users()
    if mode is SelectionMode.GROUP_PLUS_LISTED and group_id is not None:
        with gate.request(bulk=True):
            groups = rest.list_groups()
        group_id = resolve_group(runtime, tenant, groups)
        with gate.request(bulk=True):
            members = rest.group_member_ids(group_id)
    people = [
        DirectoryPerson(u.id, u.login, u.email or "", f"{u.first_name} {u.family_name}".strip())
        for u in starface_users
    ]
    selection = select_users(people, mode, tenant.login_ids or [], members, group_id)
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


def resolve_group(runtime: Runtime, tenant: Tenant, groups: list[StarfaceGroup]) -> int:
    """The selection group's id as the PBX has it now, by id or else by its last known name (a group
    deleted and created again gets a new id); stores a new id or a renamed group's name.

    Raises StarfaceNotFound naming the fix when the group is gone (syncing without it would release
    every user of the group)."""
    by_id = {group.id: group for group in groups}
    name = tenant.starface_group_name
    group = by_id.get(tenant.starface_group_id) if tenant.starface_group_id is not None else None
    if group is None and name:
        found = matching(groups, name)
        group = found[0] if len(found) == 1 else None
    if group is None:
        known = f"{name!r} (id {tenant.starface_group_id})" if name else f"id {tenant.starface_group_id}"
        raise StarfaceNotFound(
            f"the STARFACE group {known} of tenant {tenant.slug}'s user selection no longer exists; set "
            f"selection.starface_group to an existing group (`teamsconnect tenant set {tenant.slug} "
            "selection.starface_group=NAME`)"
        )
    if (group.id, group.name) != (tenant.starface_group_id, name):
        with transaction(runtime.sessions) as session:
            session.execute(update(Tenant).where(Tenant.id == tenant.id)
                            .values(starface_group_id=group.id, starface_group_name=group.name))
        log.info("tenant %s: selection group is now %r (id %s)", tenant.id, group.name, group.id)
        tenant.starface_group_id, tenant.starface_group_name = group.id, group.name
    return group.id


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

