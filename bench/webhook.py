"""What receiving one bridge event costs the web app in its own code: CPU per `sync.webhook.receive_event`.

    python bench/webhook.py [--repeats 300]

Every DND and chat write of ours comes back as a webhook, so a burst of N changes brings about 2N events
through the web app before any worker sees them. This benchmark calls the receiver as the web app's thread
pool does - tenant look-up, signature check, event-id store, hand-over to the queue - in this process
against a fresh PostgreSQL database, with the in-process coordination and a collecting queue (no broker,
no HTTP server): CPU time of this thread per event, best of 7 rounds of ``--repeats`` signed DND events,
and the SQL statements per event.

Prints ONE JSON object (also written to bench/results/webhook.json). Compare two revisions by running the
script of the newer one in a worktree of each (it imports the code of the checkout it lies in).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import bench.* and tests.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.harness import (  # noqa: E402
    ROUNDS,
    bench_database,
    in_process_runtime,
    progress,
    thread_cpu_us,
    write_and_print,
)
from connectors.starface.webhook import sign  # noqa: E402
from models.secrets import read_secrets  # noqa: E402
from sync.ports import CollectingQueue  # noqa: E402
from sync.webhook import receive_event  # noqa: E402
from tests.support.factories import make_tenant  # noqa: E402
from tests.support.query_counter import count_queries  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "webhook.json"


def signed_dnd_event(secret: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of a DND event as the bridge signs it (contract v1), with a new event id."""
    body = json.dumps({"eventId": uuid.uuid4().hex, "type": "dnd", "account": 1001, "login": "1001",
                       "occurredAt": int(time.time() * 1000), "origin": "integration", "dnd": True}).encode()
    stamp = str(int(time.time()))
    return {"x-teamsconnect-timestamp": stamp, "x-teamsconnect-signature": sign(secret, stamp, body),
            "content-type": "application/json"}, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300, help="events per timed round")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with bench_database() as (url, database):
        runtime = in_process_runtime(url)
        engine = runtime.engine
        with runtime.sessions.begin() as session:
            tenant = make_tenant(session, runtime.box, name="webhooks")
            tenant_ref, secret = str(tenant.id), read_secrets(tenant, runtime.box).bridge_secret or ""
        queue = CollectingQueue()
        outcomes: list[str] = []

        def one_event() -> None:
            headers, body = signed_dnd_event(secret)
            outcomes.append(receive_event(runtime, queue, tenant_ref, headers, body).outcome)

        for _ in range(50):  # warm: connections, compiled statements
            one_event()
        with count_queries(engine) as counted:
            one_event()
        progress(f"webhook: events answered {outcomes[-1]!r}; timing {ROUNDS} rounds")
        cpu_us_per_event = thread_cpu_us(one_event, 1, args.repeats)
        engine.dispose()
    result = {
        "method": "bench/webhook.py: sync.webhook.receive_event for signed DND events (new ids), in-process "
                  f"coordination, collecting queue; CPU time of this thread, best of {ROUNDS} rounds of "
                  f"{args.repeats} events",
        "outcomes": sorted(set(outcomes)), "cpu_us_per_event": cpu_us_per_event,
        "statements_per_event": counted.count,
        "statements": [statement.split("\n")[0][:100] for statement in counted.statements],
        "database": database,
    }
    write_and_print(result, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
