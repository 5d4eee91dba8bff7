"""A look at the PBX gate's slots from outside: which requests got one, and whether one was refused."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

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

    def pbx_acquire(self, pbx: str, limits: PbxLimits, holder: str, release: str | None = None) -> float:
        wait = self.inner.pbx_acquire(pbx, limits, holder, release)
        if wait == 0.0:
            self.granted.append(holder)
        else:
            self.refused.set()
        return wait


@contextmanager
def watching_pbx_slots(stack: Stack) -> Iterator[SeesPbxSlots]:
    """The stack's runtime sees the PBX gate through the yielded SeesPbxSlots until the block ends."""
    coordination = stack.runtime.coordination
    seen = SeesPbxSlots(coordination)
    stack.runtime.coordination = seen  # type: ignore[assignment]
    try:
        yield seen
    finally:
        stack.runtime.coordination = coordination


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
