"""The STARFACE group of a tenant's user selection, given by name (as the module's admins know it) or id.

A name is resolved over the PBX's REST API (`GET /rest/groups`) when the selection is saved and at every
directory sync (sync/directory.py); the id is stored, the last known name is kept for display. An id is
taken without a look-up, so a selection can be saved while the PBX cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connectors.starface import StarfaceError, StarfaceGroup, StarfaceRestClient
from tenants.schema import TenantConfig, TenantConfigError

FIELD = "selection.starface_group"
#: Lists the PBX's groups for a tenant definition (the service account's password in clear text).
GroupLister = Callable[[TenantConfig, str], Sequence[StarfaceGroup]]


def matching(groups: Sequence[StarfaceGroup], name: str) -> list[StarfaceGroup]:
    """The groups called `name`, compared regardless of case and surrounding spaces."""
    wanted = " ".join(name.split()).casefold()
    return [g for g in groups if " ".join(g.name.split()).casefold() == wanted]


def pick_group(groups: Sequence[StarfaceGroup], name: str) -> StarfaceGroup:
    """The one group called `name`; TenantConfigError naming the groups there are when none or several."""
    found = matching(groups, name)
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(f"{g.name} (id {g.id})" for g in sorted(groups, key=lambda g: g.name)) or "none"
        raise TenantConfigError([(FIELD, f"the STARFACE has no group named {name!r} (its groups: {known}); "
                                         "give the name as shown under Admin > Groups, or the group's id")])
    ids = ", ".join(str(g.id) for g in found)
    raise TenantConfigError([(FIELD, f"several STARFACE groups are named {name!r} (ids {ids}); give the id "
                                     f"of the one you mean, e.g. selection.starface_group={found[0].id}")])


def rest_groups(verify: bool | str, timeout: float = 10.0) -> GroupLister:
    """A `GroupLister` over the PBX's REST API with the tenant definition's service account."""

    def list_groups(config: TenantConfig, password: str) -> Sequence[StarfaceGroup]:
        sf = config.starface
        with StarfaceRestClient(sf.base_url, sf.login_id, password, verify=verify, timeout=timeout) as rest:
            return rest.list_groups()

    return list_groups


def resolve(config: TenantConfig, list_groups: Callable[[], Sequence[StarfaceGroup]],
            before: tuple[int | None, str | None] = (None, None),
            other_pbx: bool = False) -> tuple[int | None, str | None]:
    """(group id, last known name) for the selection of `config`; `before` is what is stored now, and
    `list_groups` asks the PBX (called only when a changed name must be looked up). `other_pbx`: the
    PBX address changed, so a name is looked up again even when it is unchanged.

    An unchanged name keeps its stored id without a look-up; a number is an id, taken as it is; a changed
    name is looked up on the PBX (TenantConfigError when it is unknown, ambiguous or the PBX cannot be
    asked - naming the fix: check the PBX with `teamsconnect tenant test`, or give the id).
    """
    before_id, before_name = before
    given, given_id = config.selection.starface_group, config.selection.starface_group_id
    same_name = not other_pbx and given is not None and before_name is not None and (
        given.casefold() == before_name.casefold() or given == str(before_id))
    if given_id is not None and given_id != before_id and (given is None or same_name):
        return given_id, None  # the id itself was changed (selection.starface_group_id, as before issue 11)
    if given is None:
        return given_id, before_name if given_id == before_id else None
    if given.isdigit():
        group_id = int(given)
        return group_id, before_name if group_id == before_id else None
    if same_name and before_id is not None:
        return before_id, before_name
    try:
        groups = list_groups()
    except StarfaceError as exc:
        raise TenantConfigError([(FIELD, f"cannot look up the group {given!r} on the STARFACE: {exc}. "
                                         "Check starface.base_url and the service account (`teamsconnect "
                                         "tenant test`), or give the group's id (Admin > Groups) instead of "
                                         "its name - an id is saved without asking the PBX")]) from None
    group = pick_group(groups, given)
    return group.id, group.name
