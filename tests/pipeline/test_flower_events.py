"""What Flower sees of the workers: the events of every task but the polls, unless the operator asks for
those too (TEAMSCONNECT_FLOWER_POLL_TASKS), and no "task-sent" events at all (workers/app.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from simulators.paired import paired_seeds
from workers import queues
from workers.app import celery_app

POLL_TASKS = {queues.TASK_POLL_BATCH, queues.TASK_POLL_MANY}


class FlowerView:
    """Receives the broker's events in a thread of its own, as Flower does."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._connection = celery_app.connection_for_read()
        self._receiver = celery_app.events.Receiver(self._connection, handlers={"*": self.events.append})
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def close(self) -> None:
        self._receiver.should_stop = True
        self._thread.join(timeout=10)
        self._connection.release()

    def names_by_task(self) -> dict[str, str]:
        """Task id -> task name, from the task-received events (the others carry the id alone)."""
        return {event["uuid"]: event["name"] for event in list(self.events)
                if event["type"] == "task-received"}

    def succeeded(self, names: set[str]) -> bool:
        by_id = self.names_by_task()
        return any(event["type"] == "task-succeeded" and by_id.get(event["uuid"]) in names
                   for event in list(self.events))


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(3))


def _apply_a_teams_call(stack: Stack, poll_events: bool) -> FlowerView:
    """A worker of one process (so a poll's events are all published before the update it queues is
    received) applies one Teams call, while a FlowerView listens."""
    stack.add_tenant()
    if poll_events:
        stack.env["TEAMSCONNECT_FLOWER_POLL_TASKS"] = "true"
    view = FlowerView()
    stack.start_worker("w1", concurrency=1, reserve_events=False)
    wait_until(lambda: any(event["type"] == "worker-heartbeat" for event in list(view.events)), timeout=20,
               what="the worker's first heartbeat (the view is listening)")
    stack.teams(0, "sign_in")
    stack.teams(0, "call_start")
    stack.until(lambda: stack.user(0)["dnd"], what="DND on for the Teams call")
    wait_until(lambda: view.succeeded({queues.TASK_APPLY_STARFACE_BATCH}), timeout=20,
               what="the update's task-succeeded event")
    return view


def test_flower_sees_the_updates_but_not_the_polls_by_default(stack: Stack) -> None:
    view = _apply_a_teams_call(stack, poll_events=False)
    try:
        by_id = view.names_by_task()
        task_events = [event for event in list(view.events) if event["type"].startswith("task-")]
        assert not POLL_TASKS & set(by_id.values())
        # Every task event belongs to a task Flower saw received: no poll's started or succeeded either.
        assert all(event["uuid"] in by_id for event in task_events)
        assert not [event for event in task_events if event["type"] == "task-sent"]
    finally:
        view.close()


def test_flower_sees_the_polls_too_when_the_operator_asks_for_them(stack: Stack) -> None:
    view = _apply_a_teams_call(stack, poll_events=True)
    try:
        assert view.succeeded(POLL_TASKS)
        assert not [event for event in list(view.events) if event["type"] == "task-sent"]
    finally:
        view.close()
