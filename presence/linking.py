"""Which STARFACE users are synced, and to which Microsoft 365 user each is linked (pure, no I/O).

Selection as in the STARFACE module: ``all_except_listed`` takes every user except the listed login ids;
``group_plus_listed`` takes the members of one STARFACE group plus the listed login ids. Selected users
are matched by e-mail (case-insensitive; the Graph connector tries mail, then userPrincipalName, then
proxy addresses). Everything that cannot be linked unambiguously gets a state and a reason the admin can
act on: no e-mail, an e-mail shared by several STARFACE users, no Microsoft 365 user with that address,
or several. Nothing is guessed.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


class SelectionMode(enum.StrEnum):
    """How the synced STARFACE users are chosen, as in the STARFACE module."""

    ALL_EXCEPT_LISTED = "all_except_listed"
    GROUP_PLUS_LISTED = "group_plus_listed"


class LinkState(enum.StrEnum):
    """Whether a STARFACE user is synced, and if not, why (reported to the admin, never guessed)."""

    LINKED = "linked"
    UNMATCHED = "unmatched"
    DUPLICATE_EMAIL = "duplicate_email"
    NO_EMAIL = "no_email"
    EXCLUDED = "excluded"


@dataclass(frozen=True)
class DirectoryPerson:
    """A STARFACE user as directory sync sees it."""

    account_id: int
    login_id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class EntraCandidate:
    """A Microsoft 365 user an e-mail address resolved to."""

    object_id: str
    display_name: str


@dataclass(frozen=True)
class LinkDecision:
    account_id: int
    login_id: str
    email: str | None
    display_name: str
    state: LinkState
    reason: str
    entra_object_id: str | None = None


@dataclass
class SelectionResult:
    selected: list[DirectoryPerson]
    excluded: list[LinkDecision]
    unknown_login_ids: list[str] = field(default_factory=list)


def select_users(
    people: Sequence[DirectoryPerson],
    mode: SelectionMode,
    login_ids: Iterable[str],
    group_member_ids: Iterable[int] = (),
    group_id: int | None = None,
) -> SelectionResult:
    """Applies the tenant's selection rule; listed login ids that do not exist are reported."""
    listed = {login.strip() for login in login_ids if login.strip()}
    known_logins = {person.login_id for person in people}
    members = set(group_member_ids)
    selected: list[DirectoryPerson] = []
    excluded: list[LinkDecision] = []
    for person in people:
        if mode is SelectionMode.ALL_EXCEPT_LISTED:
            take = person.login_id not in listed
            why = "listed in the tenant's login-id list, which excludes users in 'all users' mode"
        else:
            take = person.account_id in members or person.login_id in listed
            why = f"neither a member of STARFACE group {group_id} nor in the tenant's login-id list"
        if take:
            selected.append(person)
        else:
            excluded.append(LinkDecision(person.account_id, person.login_id, person.email or None,
                                         person.display_name, LinkState.EXCLUDED, why))
    return SelectionResult(selected, excluded, sorted(listed - known_logins))


def emails_to_resolve(selected: Sequence[DirectoryPerson]) -> list[str]:
    """The distinct e-mail addresses that need a Microsoft 365 lookup."""
    return sorted({person.email.strip().lower() for person in selected if person.email.strip()})


def link_users(
    selected: Sequence[DirectoryPerson], resolved: Mapping[str, Sequence[EntraCandidate]]
) -> list[LinkDecision]:
    """Links each selected STARFACE user to exactly one Microsoft 365 user, or says why it cannot."""
    by_email: dict[str, list[DirectoryPerson]] = defaultdict(list)
    for person in selected:
        if person.email.strip():
            by_email[person.email.strip().lower()].append(person)
    decisions: list[LinkDecision] = []
    tentative: list[tuple[DirectoryPerson, str, EntraCandidate]] = []
    for person in selected:
        email = person.email.strip().lower()
        if not email:
            decisions.append(_decision(person, LinkState.NO_EMAIL,
                                       "the STARFACE user has no e-mail address; add it in STARFACE"))
            continue
        sharing = by_email[email]
        if len(sharing) > 1:
            logins = ", ".join(sorted(p.login_id for p in sharing))
            decisions.append(_decision(person, LinkState.DUPLICATE_EMAIL,
                                       f"{email} is used by STARFACE users {logins}; give each its own"))
            continue
        candidates = resolved.get(email, ())
        if not candidates:
            decisions.append(_decision(person, LinkState.UNMATCHED,
                                       f"no Microsoft 365 user has {email} as mail, UPN or proxy address"))
        elif len(candidates) > 1:
            names = ", ".join(sorted(c.display_name or c.object_id for c in candidates))
            decisions.append(_decision(person, LinkState.DUPLICATE_EMAIL,
                                       f"{email} matches several Microsoft 365 users ({names})"))
        else:
            tentative.append((person, email, candidates[0]))
    # Two STARFACE users must not drive one Teams user (e.g. one by mail, one by an alias).
    per_entra: dict[str, list[DirectoryPerson]] = defaultdict(list)
    for person, _, candidate in tentative:
        per_entra[candidate.object_id].append(person)
    for person, email, candidate in tentative:
        sharing = per_entra[candidate.object_id]
        if len(sharing) > 1:
            logins = ", ".join(sorted(p.login_id for p in sharing))
            decisions.append(_decision(
                person, LinkState.DUPLICATE_EMAIL,
                f"Microsoft 365 user {candidate.display_name} is matched by STARFACE users {logins}"))
        else:
            decisions.append(_decision(person, LinkState.LINKED, f"linked by {email}", candidate.object_id))
    return decisions


def _decision(person: DirectoryPerson, state: LinkState, reason: str,
              entra_object_id: str | None = None) -> LinkDecision:
    return LinkDecision(person.account_id, person.login_id, person.email.strip() or None,
                        person.display_name, state, reason, entra_object_id)
