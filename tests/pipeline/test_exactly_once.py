"""Exactly one STARFACE write per change, however often work is delivered or run concurrently."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from embedded.stack import Stack, StackFactory
from embedded.waiting import wait_until
from models.base import utcnow
from simulators.paired import paired_seeds
from workers.task_queue import CELERY_QUEUE

USERS = 8


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    yield from stacks.build(paired_seeds(USERS), web=False)


def test_it_writes_once_when_a_poll_task_is_delivered_twice(stack: Stack) -> None:
    stack.add_tenant(poll_interval_s=3600.0)  # only the polls this test sends
    for index in range(USERS):
        stack.teams(index, "sign_in")
        stack.teams(index, "call_start")
    batch = stack.linked_batch()
    assert len(batch) == USERS
    stack.start_worker("w1", concurrency=2)
    stack.start_worker("w2", concurrency=2)
    for _ in range(2):  # the same poll, twice, to four concurrent processes
        CELERY_QUEUE.poll(stack.tenant_id, batch, utcnow(), 60.0)
    stack.pbx.request_log()  # (the log is read below once the writes have settled)
    wait_until(lambda: all(stack.user(i)["dnd"] for i in range(USERS)), timeout=20, what="every DND on")
    # a third, late copy after everything is applied
    CELERY_QUEUE.poll(stack.tenant_id, batch, utcnow(), 60.0)
    wait_until(lambda: len(stack.changes("starface")) >= USERS, what="change log rows")
    stack.pbx.wait_webhooks_idle()
    stack.settle()
    assert [stack.phoneconfig_puts(i) for i in range(USERS)] == [1] * USERS
    assert len(stack.changes("starface")) == USERS


def test_it_writes_once_with_two_workers_and_duplicated_ticks(stack: Stack) -> None:
    stack.add_tenant()
    for index in range(USERS):
        stack.teams(index, "sign_in")
    stack.start_worker("w1", concurrency=2)
    stack.start_worker("w2", concurrency=2)
    stack.until(lambda: len(stack.changes()) == 0 and stack.ms.count("getPresencesByUserId") >= 1,
                what="a first poll")
    for index in range(USERS):
        stack.teams(index, "call_start")

    def two_beats() -> None:
        threads = [threading.Thread(target=stack.tick) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    wait_until(lambda: all(stack.user(i)["dnd"] for i in range(USERS)), timeout=20, between=two_beats,
               what="every DND on")
    for _ in range(5):
        two_beats()
    stack.settle()
    assert [stack.phoneconfig_puts(i) for i in range(USERS)] == [1] * USERS
    assert len(stack.changes("starface")) == USERS
