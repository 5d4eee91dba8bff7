"""A prefork child starts with the collector settings of workers/gc_tuning.py (issue 14: small tenants
cheaply): what it imported and built is frozen, young objects are collected every YOUNG_THRESHOLD."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workers.gc_tuning import YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter (the test process's collector stays as it is) that imports the Celery app and sends
# the signal Celery sends in each new pool child.
_CHILD = """
import gc, json
from celery.signals import worker_process_init
import workers.app  # noqa: F401 - connects the app's signal handlers
before = (gc.get_threshold()[0], gc.get_freeze_count())
worker_process_init.send(sender=None)
print(json.dumps({"before": before, "after": (gc.get_threshold()[0], gc.get_freeze_count())}))
"""


def test_a_pool_child_freezes_what_it_holds_and_collects_young_objects_less_often() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == [700, 0]  # Python's defaults, nothing frozen
    threshold, frozen = seen["after"]
    assert threshold == YOUNG_THRESHOLD
    assert frozen > 10_000  # the imported modules' objects (about 100,000 in a worker)
