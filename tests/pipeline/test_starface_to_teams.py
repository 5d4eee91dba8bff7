"""End to end, STARFACE -> Teams: a call on the PBX raises a signed webhook, the web app enqueues it,
a worker sets our Teams presence session, and ending the call clears it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedded.stack import Stack, StackFactory
from simulators.paired import paired_seeds


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(4))


def _availability(stack: Stack, index: int) -> tuple[str, str]:
    presence = stack.presence(index)
    return presence["availability"], presence["activity"]


def test_it_holds_a_teams_session_while_a_starface_call_lasts(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)
    stack.start_worker("w1")
    stack.teams(3, "sign_in")
    login = stack.seeds.login(3)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    # Issue 11: the module's default, DoNotDisturb/Presenting ("Nicht stören"; only DND stops Teams calls).
    stack.until(lambda: _availability(stack, 3) == ("DoNotDisturb", "Presenting"), what="Teams DND")
    stack.pbx.hang_up(login)
    stack.until(lambda: _availability(stack, 3) == ("Available", "Available"), what="the session cleared")
    stack.settle()
    sessions = [c.after["session"] for c in stack.changes("teams")]
    assert sessions == ["DoNotDisturb/Presenting", None]
    assert stack.ms.count("setPresence") == 1 and stack.ms.count("clearPresence") == 1


def test_it_does_not_echo_our_teams_session_back_as_a_starface_dnd(stack: Stack) -> None:
    stack.add_tenant()
    stack.start_worker("w1")
    stack.teams(0, "sign_in")
    login = stack.seeds.login(0)
    stack.pbx.ring(login)
    stack.pbx.answer(login)
    stack.until(lambda: _availability(stack, 0) == ("DoNotDisturb", "Presenting"), what="Teams DND")
    polls = stack.ms.count("getPresencesByUserId")
    stack.until(lambda: stack.ms.count("getPresencesByUserId") >= polls + 3, what="three more polls")
    assert stack.user(0)["dnd"] is False  # our own DoNotDisturb/Presenting is not a Teams presentation
    assert stack.changes("starface") == []
    stack.pbx.hang_up(login)
    stack.until(lambda: _availability(stack, 0) == ("Available", "Available"), what="the session cleared")


def test_it_uses_dnd_presenting_when_the_tenant_asks_for_it(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0, options={"teams_presence_mode": "dnd_presenting"})
    stack.start_worker("w1")
    stack.teams(1, "sign_in")
    stack.pbx.ring(stack.seeds.login(1))
    stack.pbx.answer(stack.seeds.login(1))
    stack.until(lambda: _availability(stack, 1) == ("DoNotDisturb", "Presenting"), what="Teams DND")
