"""End to end, Teams -> STARFACE: real workers, PostgreSQL, Redis and both simulators over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedded.stack import Stack, StackFactory
from simulators.paired import paired_seeds


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(5))


def test_it_sets_dnd_and_text_for_a_teams_call_and_clears_both_after(stack: Stack) -> None:
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(0, "sign_in")
    stack.teams(0, "call_start")
    # DND goes over REST first, then the text through the bridge: wait for both.
    stack.until(lambda: (s := stack.user(0))["dnd"] and s["chatPresenceMessage"] == "On a call in MS Teams",
                what="DND on and the call text for the Teams call")
    stack.teams(0, "call_end")
    stack.until(lambda: not (s := stack.user(0))["dnd"] and s["chatPresenceMessage"] == "",
                what="DND and text cleared after the call")
    stack.settle()
    assert [c.cause for c in stack.changes("starface")] == ["teams:InACall", "teams:Available"]
    assert not stack.user(1)["dnd"]  # nobody else was touched


@pytest.fixture
def rest_only_stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(3, bridge=False), web=False)


def test_it_sets_and_clears_dnd_alone_for_a_tenant_without_a_bridge(rest_only_stack: Stack) -> None:
    stack = rest_only_stack
    stack.add_tenant(bridge=False)
    stack.start_worker("w1")
    stack.teams(1, "sign_in")
    stack.teams(1, "call_start")
    stack.until(lambda: stack.user(1)["dnd"], what="DND on over REST")
    stack.teams(1, "call_end")
    stack.until(lambda: not stack.user(1)["dnd"], what="DND off over REST")
    assert stack.user(1)["chatPresenceMessage"] == ""  # no bridge: the chat text is never touched
    stack.settle()
    assert [c.after for c in stack.changes("starface")] == [{"dnd": True}, {"dnd": False}]


def test_it_lets_teams_lead_over_a_dnd_switched_on_by_hand_by_default(stack: Stack) -> None:
    """Issue 11: as in the STARFACE module, the next Teams status change decides the DND, also over a DND
    the user switched on by hand; until then the user's DND stays."""
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(2, "sign_in")
    stack.teams(2, "call_start")
    stack.until(lambda: stack.user(2)["chatPresenceMessage"] == "On a call in MS Teams", what="call text")
    stack.teams(2, "call_end")
    stack.until(lambda: stack.user(2)["dnd"] is False, what="our DND cleared")
    stack.pbx.toggle_dnd_by_hand(stack.seeds.login(2), True)
    stack.tick()
    stack.settle()
    assert stack.user(2)["dnd"] is True  # no Teams change: the user's DND stays
    stack.teams(2, "call_start")
    stack.until(lambda: stack.user(2)["chatPresenceMessage"] == "On a call in MS Teams", what="call text")
    stack.teams(2, "call_end")
    stack.until(lambda: stack.user(2)["dnd"] is False, what="Teams leads: the DND follows Teams")


def test_it_never_clears_a_dnd_the_user_switched_on_by_hand_when_respected(stack: Stack) -> None:
    stack.add_tenant(options={"respect_manual_dnd": True})  # the behaviour before issue 11
    stack.start_worker("w1")
    stack.teams(2, "sign_in")
    stack.until(lambda: any(c.cause == "teams:Available" for c in stack.changes()) or stack.user(2),
                what="a first poll")
    stack.pbx.toggle_dnd_by_hand(stack.seeds.login(2), True)
    stack.teams(2, "call_start")
    stack.until(lambda: stack.user(2)["chatPresenceMessage"] == "On a call in MS Teams", what="call text")
    stack.teams(2, "call_end")
    stack.until(lambda: stack.user(2)["chatPresenceMessage"] == "", what="call text cleared")
    stack.tick()
    stack.settle()
    assert stack.user(2)["dnd"] is True  # the user's own DND survives the whole Teams call
    assert all(c.after.get("dnd") is not False for c in stack.changes("starface"))
