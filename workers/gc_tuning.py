"""Python's cyclic garbage collector, set for a worker process that polls many tenants.

Why: a packed poll of 52 tenants allocates tens of thousands of objects that live as long as the task
(presences, Graph answers, SQL rows). With Python's default first threshold (700) the collector ran
every few hundred microseconds, promoted those objects while they were still in use, and their death in
the oldest generation then set off full collections that walk every object of the process (the
imported modules, each tenant's clients and policy): 7-10 % of a prefork child's CPU while it polled
2,000 x 25 at a 2 s cadence, one full collection about 200 ms. Measured with the settings below: 1.7 %.

- ``gc.freeze()`` once the process has imported and built what it keeps: those objects are never walked
  again (and a forked child does not copy their pages to update the collector's bookkeeping).
- A first threshold of YOUNG_THRESHOLD: a task's objects mostly die before a collection sees them. The
  collector still runs, so reference cycles are still freed (a young collection of that many objects took
  about 30 ms on the bench host).
"""

from __future__ import annotations

import gc

#: Net allocations of container objects between two young collections (Python's default: 700).
YOUNG_THRESHOLD = 50_000


def tune() -> None:
    """Freezes what exists now and raises the first threshold; the other two stay as Python sets them."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
