"""End to end: the PBX's echoes of an update's writes reach the webhook receiver, which answers them
without queuing (sync/echoes.py); the user's own change after them is queued and processed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models.base import utcnow
from simulators.paired import paired_seeds
from workers.task_queue import CELERY_QUEUE

USERS = 3
ECHO_ANSWER = "echo of a TeamsConnect write"


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(USERS))


def _answers(stack: Stack) -> list[tuple[str, int | None, str]]:
    """(type, status, answer) of every DND and chat-status event the bridge delivered."""
    return [(a["type"], a["status"], a["answer"]) for a in stack.pbx.webhooks()["attempts"]
            if a["type"] in ("dnd", "presence")]


def _written(stack: Stack, index: int) -> bool:
    user = stack.user(index)
    return bool(user["dnd"] and user["chatPresenceMessage"])


def test_an_updates_echoes_are_answered_without_queuing(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)  # only the poll this test sends
    for index in range(USERS):
        stack.teams(index, "sign_in")
        stack.teams(index, "call_start")
    stack.start_worker("w1")
    CELERY_QUEUE.poll(stack.tenant_id, stack.linked_batch(), utcnow(), 60.0)
    wait_until(lambda: all(_written(stack, i) for i in range(USERS)), timeout=20,
               what="DND and chat text written for every user")
    stack.pbx.wait_webhooks_idle()

    answers = _answers(stack)
    assert sorted(kind for kind, _, _ in answers) == ["dnd"] * USERS + ["presence"] * USERS
    assert all(status == 202 and ECHO_ANSWER in answer for _, status, answer in answers), answers

    # The user switches DND off by hand: no echo, queued, and learned (the user's DND is left alone).
    stack.pbx.toggle_dnd_by_hand(stack.seeds.login(0), False)
    stack.pbx.wait_webhooks_idle()
    kind, status, answer = _answers(stack)[-1]
    assert (kind, status) == ("dnd", 202) and "accepted" in answer
    stack.settle()
    assert stack.user(0)["dnd"] is False
