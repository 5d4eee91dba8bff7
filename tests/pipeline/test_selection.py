"""User selection and e-mail matching: every user linked exactly once or reported with a reason."""

from __future__ import annotations

from presence.linking import (
    DirectoryPerson,
    EntraCandidate,
    LinkState,
    SelectionMode,
    emails_to_resolve,
    link_users,
    select_users,
)

ALICE = DirectoryPerson(1, "1001", "Alice@Contoso.example", "Alice")
BOB = DirectoryPerson(2, "1002", "bob@contoso.example", "Bob")
CAROL = DirectoryPerson(3, "1003", "", "Carol")
DAVE = DirectoryPerson(4, "1004", "shared@contoso.example", "Dave")
ERIN = DirectoryPerson(5, "1005", "SHARED@contoso.example", "Erin")
PEOPLE = [ALICE, BOB, CAROL, DAVE, ERIN]


def test_it_takes_all_users_except_the_listed_ones_and_reports_unknown_logins() -> None:
    result = select_users(PEOPLE, SelectionMode.ALL_EXCEPT_LISTED, ["1002", "9999"])
    assert [p.login_id for p in result.selected] == ["1001", "1003", "1004", "1005"]
    assert [(d.login_id, d.state) for d in result.excluded] == [("1002", LinkState.EXCLUDED)]
    assert result.unknown_login_ids == ["9999"]


def test_it_takes_a_group_plus_the_listed_users() -> None:
    result = select_users(
        PEOPLE, SelectionMode.GROUP_PLUS_LISTED, ["1005"], group_member_ids=[1, 2], group_id=7
    )
    assert [p.login_id for p in result.selected] == ["1001", "1002", "1005"]
    assert all("group 7" in d.reason for d in result.excluded)


def test_it_links_by_email_case_insensitively_and_reports_everything_else() -> None:
    assert emails_to_resolve(PEOPLE) == [
        "alice@contoso.example",
        "bob@contoso.example",
        "shared@contoso.example",
    ]
    resolved = {
        "alice@contoso.example": [EntraCandidate("a-id", "Alice A.")],
        "bob@contoso.example": [],
        "shared@contoso.example": [EntraCandidate("s-id", "Shared")],
    }
    decisions = {d.login_id: d for d in link_users(PEOPLE, resolved)}
    assert (decisions["1001"].state, decisions["1001"].entra_object_id) == (LinkState.LINKED, "a-id")
    assert (
        decisions["1002"].state is LinkState.UNMATCHED and "bob@contoso.example" in decisions["1002"].reason
    )
    assert decisions["1003"].state is LinkState.NO_EMAIL
    assert decisions["1004"].state is LinkState.DUPLICATE_EMAIL and "1004, 1005" in decisions["1004"].reason
    assert decisions["1005"].state is LinkState.DUPLICATE_EMAIL


def test_it_never_guesses_between_several_microsoft_users() -> None:
    resolved = {
        "alice@contoso.example": [EntraCandidate("a1", "Alice One"), EntraCandidate("a2", "Alice Two")]
    }
    (decision,) = link_users([ALICE], resolved)
    assert decision.state is LinkState.DUPLICATE_EMAIL
    assert decision.entra_object_id is None
    assert "Alice One, Alice Two" in decision.reason


def test_it_refuses_two_starface_users_on_one_microsoft_user() -> None:
    alias = DirectoryPerson(6, "1006", "alice.alias@contoso.example", "Alice alias")
    resolved = {
        "alice@contoso.example": [EntraCandidate("a-id", "Alice")],
        "alice.alias@contoso.example": [EntraCandidate("a-id", "Alice")],
    }
    decisions = link_users([ALICE, alias], resolved)
    assert {d.state for d in decisions} == {LinkState.DUPLICATE_EMAIL}
