"""What one echo event costs the events worker in its own code: CPU per event of `sync.events.run_event`.

    python bench/events.py [--users 200] [--repeats 200]

Every DND and chat write of ours comes back from the bridge as an event ("origin: integration"), so a burst
of N changes brings about 2N events that change nothing: the events worker finds the user, checks the event
for a rival sync and decides the Teams session again. This benchmark measures that in this process against
a fresh PostgreSQL database (no network, no Celery; the in-process coordination): DND-on events for users
whose applied state says the DND is ours, in CPU time of this thread per event (best of 7 rounds of
``--repeats`` events, each round over the users in turn), with the SQL statements per event.

Prints ONE JSON object (also written to bench/results/events.json). Compare two revisions by running the
script of the newer one in a worktree of each (it imports the code of the checkout it lies in).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import bench.* and tests.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from sqlalchemy import insert, select  # noqa: E402

from bench.harness import (  # noqa: E402
    ROUNDS,
    bench_database,
    in_process_runtime,
    progress,
    thread_cpu_us,
    write_and_print,
)
from models import AppliedState, Target, UserLink  # noqa: E402
from presence import StarfaceApplied, TeamsApplied  # noqa: E402
from presence.categories import Category  # noqa: E402
from sync.events import run_event  # noqa: E402
from tests.support.factories import make_tenant, make_user_links  # noqa: E402
from tests.support.query_counter import count_queries  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "events.json"


def echo_event(account: int, login: str, at: datetime, n: int) -> dict[str, Any]:
    """The bridge's event for a DND we switched on (its task arguments, `sync.events.event_to_args`)."""
    return {"event_id": f"echo-{n}", "type": "dnd", "account": account, "login": login,
            "occurred_at": at.isoformat(), "origin": "integration", "telephony_state": None, "dnd": True,
            "chat_presence": None, "chat_presence_message": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="users the events are for (in turn)")
    parser.add_argument("--repeats", type=int, default=200, help="events per timed round")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with bench_database() as (url, database):
        runtime = in_process_runtime(url)
        engine, sessions = runtime.engine, runtime.sessions
        with sessions.begin() as session:
            tenant = make_tenant(session, runtime.box, name="events")
            make_user_links(session, tenant, args.users)
            tenant_id = tenant.id
        with sessions.begin() as session:
            users = [(link_id, account, login) for link_id, account, login in session.execute(
                select(UserLink.id, UserLink.starface_account_id, UserLink.login_id)
                .where(UserLink.tenant_id == tenant_id).order_by(UserLink.id))]
        applied_at = datetime.now(UTC) - timedelta(minutes=1)
        ours = StarfaceApplied(dnd_ours=True, category=Category.IN_A_CALL, observed_at=applied_at).to_json()
        with sessions.begin() as session:
            session.execute(insert(AppliedState), [
                {"user_link_id": link_id, "tenant_id": tenant_id, "target": target, "fields": fields,
                 "owned": [], "version": 3, "applied_at": applied_at}
                for link_id, _, _ in users
                for target, fields in ((Target.STARFACE.value, ours), (Target.TEAMS.value,
                                                                      TeamsApplied().to_json()))])
        counter = iter(range(10**9))

        def one_event() -> dict[str, Any]:
            n = next(counter)
            _, account, login = users[n % len(users)]
            return run_event(runtime, tenant_id, echo_event(account, login, datetime.now(UTC), n))

        for _ in range(len(users)):  # every user once: the facts the echo settles are recorded
            one_event()
        outcome = one_event()
        with count_queries(engine) as counted:
            one_event()
        progress(f"events: {args.users} users, echo events answered {outcome}; timing {ROUNDS} rounds")
        cpu_us_per_event = thread_cpu_us(one_event, 1, args.repeats)
        engine.dispose()
    result = {
        "method": "bench/events.py: run_event for DND-on echo events of our own writes (origin integration), "
                  f"users in turn, in-process coordination; CPU time of this thread, best of {ROUNDS} rounds "
                  f"of {args.repeats} events",
        "users": args.users, "outcome": outcome, "cpu_us_per_event": cpu_us_per_event,
        "statements_per_event": counted.count,
        "statements": [statement.split("\n")[0][:100] for statement in counted.statements],
        "database": database,
    }
    write_and_print(result, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
