"""The stack's coordination as a test needs it: watched (which PBX slots the gate got, whether one was
refused), with the PBX's slots held by other workers, or with the shared store down."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import redis

from embedded.stack import Stack
from models import Tenant
from models.db import transaction
from sync.apply import pbx_gate
from sync.coordination import Coordination, PbxLimits

T = TypeVar("T")


class SeesPbxSlots:
    """The stack's own coordination, noting each slot of a PBX the gate got and each time it found none."""

    def __init__(self, inner: Coordination) -> None:
        self.inner = inner
        self.granted: list[str] = []
        self.refused = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pbx_take(self, pbx: str, limits: PbxLimits, holder: str, release: str | None,
                 requests: int) -> tuple[float, int]:
        wait, paid = self.inner.pbx_take(pbx, limits, holder, release, requests)
        if wait == 0.0:
            self.granted.append(holder)
        else:
            self.refused.set()
        return wait, paid


class RedisDown:
    """A coordination whose shared store does not answer: every call raises as redis-py does."""

    def __getattr__(self, name: str) -> Any:
        def unreachable(*_args: Any, **_kwargs: Any) -> Any:
            raise redis.ConnectionError("Connection refused")

        return unreachable


C = TypeVar("C")


@contextmanager
def using_coordination(stack: Stack, coordination: C) -> Iterator[C]:
    """The stack's runtime uses ``coordination`` until the block ends, then its own again."""
    own = stack.runtime.coordination
    stack.runtime.coordination = coordination  # type: ignore[assignment]
    try:
        yield coordination
    finally:
        stack.runtime.coordination = own


def watching_pbx_slots(stack: Stack) -> AbstractContextManager[SeesPbxSlots]:
    """The stack's runtime sees the PBX gate through the yielded SeesPbxSlots until the block ends."""
    return using_coordination(stack, SeesPbxSlots(stack.runtime.coordination))


@contextmanager
def pbx_slots_held(stack: Stack, coordination: Coordination) -> Iterator[None]:
    """Other workers hold every slot of the stack tenant's PBX (in ``coordination``, the one the workers
    share) until the block ends."""
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        gate = pbx_gate(stack.runtime, tenant)
        pbx = tenant.starface_base_url.rstrip("/")
    others = [f"other-worker-{n}" for n in range(gate.limits.max_in_flight)]
    assert all(coordination.pbx_acquire(pbx, gate.limits, holder) == 0.0 for holder in others)
    try:
        yield
    finally:
        for holder in others:
            coordination.pbx_release(pbx, holder)


def run_while_pbx_full(stack: Stack, work: Callable[[], T], what: str) -> tuple[T, SeesPbxSlots]:
    """Runs ``work`` in a thread while other workers hold every slot of the stack tenant's PBX, and
    asserts that it asks the PBX's gate and sends the full PBX nothing; then gives the slots back and
    returns what ``work`` returned with the slots its requests got."""
    requests_before = len(stack.pbx.request_log())
    outcome: list[T] = []
    running = threading.Thread(target=lambda: outcome.append(work()))
    with watching_pbx_slots(stack) as seen:
        try:
            with pbx_slots_held(stack, seen.inner):
                running.start()
                assert seen.refused.wait(10), f"{what} never asked the PBX's gate for a slot"
                assert len(stack.pbx.request_log()) == requests_before  # the full PBX was sent nothing
        finally:
            running.join(20)
    assert outcome, f"{what} did not finish once the PBX had slots again"
    return outcome[0], seen
