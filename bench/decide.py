"""What one poll batch costs in the worker's own code, per user, once every user has applied states.

    python bench/decide.py [--users 650] [--repeats 20]

A service that has run for a day holds two applied-state rows for nearly every user (anyone who was
busy once has a STARFACE row; the Teams row comes with it). The steady part of bench/pipeline.py starts
from fresh users, most of whom never had a change and so have no rows: it leaves out what reading and
parsing those rows costs. This benchmark measures, in this process against a fresh PostgreSQL
database (no network to Microsoft or the PBX), the steps of `sync.poll` for one batch whose users all
have their rows and whose presence has not changed, in CPU time of this thread (best of 7 rounds of
``--repeats`` batches each):

- ``read_orm``: the batch's applied states as ORM objects (`models.store.load_applied_states`, what the
  poll used before; other writers still use it);
- ``read_rows``: the same rows as plain result rows (`models.store.read_applied_states`, what it uses);
- ``parse``: the Graph answer for the batch (JSON to `Presence`, as `connectors.graph` does);
- ``decide``: the decision for every user (`sync.poll._decide`: the rows parsed, the engine asked);
- ``settled``: what a poll does instead of ``read_rows`` and ``decide`` once every user's "nothing to write"
  is remembered (`sync.poll._undecided`: the rows' versions read in one statement, each user's presence and
  versions looked up in the memo of sync/settled.py; nobody is left to decide).

Prints ONE JSON object (also written to bench/results/decide.json): CPU microseconds per user for each
step, and the records per CPU-second of read + parse + decide with either read, and of parse + settled
(the HTTP request, the Celery task and the few other statements of a poll come on top).

CPU time on a shared virtual machine varies by 2x from run to run. Instructions do not: with
``--decide-only N`` the script sets up as above and then only runs the decision N times, untimed, so

    valgrind --tool=callgrind python bench/decide.py --decide-only 0    # setup alone
    valgrind --tool=callgrind python bench/decide.py --decide-only 20   # setup + 20 batches

give the decision's instructions per user as (Ir(20) - Ir(0)) / (20 x users), the same whatever else the
machine is doing (run both for each revision compared).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import bench.* and tests.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from sqlalchemy import insert, select  # noqa: E402

from bench.harness import ROUNDS, bench_database, progress, thread_cpu_us, write_and_print  # noqa: E402
from connectors.graph import Presence  # noqa: E402
from models import AppliedState, Target, UserLink  # noqa: E402
from models.crypto import SecretBox, generate_key  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.store import load_applied_states, read_applied_states  # noqa: E402
from presence import StarfaceApplied, TeamsApplied, TeamsObservation, plan_starface  # noqa: E402
from presence.categories import categorize  # noqa: E402
from sync import poll  # noqa: E402
from sync.settled import SettledUsers  # noqa: E402
from tenants.service import load_tenant_policies  # noqa: E402
from tests.support.factories import make_tenant, make_user_links  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "decide.json"
#: Presence of the batch's users, in turn: what a working day shows.
PRESENCES = [("Available", "Available"), ("Busy", "InACall"), ("Away", "Away"), ("Busy", "InAMeeting"),
             ("Offline", "Offline"), ("DoNotDisturb", "Presenting")]


def graph_answer(entra_ids: list[str]) -> bytes:
    """The body Graph's getPresencesByUserId returns for these users (graph-api.md section 1)."""
    return json.dumps({"value": [
        {"id": entra_id, "availability": PRESENCES[n % len(PRESENCES)][0],
         "activity": PRESENCES[n % len(PRESENCES)][1], "statusMessage": None,
         "outOfOfficeSettings": {"message": None, "isOutOfOffice": False}, "sequenceNumber": f"C{n:010d}"}
        for n, entra_id in enumerate(entra_ids)]}).encode()


def parse(answer: bytes) -> list[Presence]:
    """What `GraphClient.get_presences` does with the body."""
    return [Presence.from_graph(item) for item in json.loads(answer).get("value", [])]


def settled_states(presences: list[Presence], policy: Any, observed_at: datetime) -> list[dict[str, Any]]:
    """Per user the STARFACE fields the last applied change left: what the presence asks for, applied."""
    states = []
    for presence in presences:
        observation = TeamsObservation(presence.availability, presence.activity, presence.out_of_office,
                                       presence.sequence_number, observed_at)
        plan = plan_starface(policy, observation, StarfaceApplied(), TeamsApplied(), observed_at, True)
        assert plan is not None  # unsettled: always a plan
        category = plan.category or categorize(presence.availability, presence.activity, False)
        states.append(StarfaceApplied(
            dnd_ours=plan.dnd.value == "set", chat_text=plan.chat_text or None, category=category,
            sequence_number=presence.sequence_number, observed_at=observed_at, chat_symbol=plan.chat_symbol,
        ).to_json())
    return states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=650, help="users in the batch (Graph's most: 650)")
    parser.add_argument("--repeats", type=int, default=20, help="batches per timed round")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--decide-only", type=int, default=None, metavar="N",
                        help="after the setup only run the decision N times, untimed (for callgrind)")
    args = parser.parse_args(argv)
    with bench_database() as (url, database):
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            tenant = make_tenant(session, SecretBox([generate_key()]), name="decide")
            make_user_links(session, tenant, args.users)
            tenant_id = tenant.id
        with sessions.begin() as session:
            tenant, policy = load_tenant_policies(session, [tenant_id])[tenant_id]
            batch = [(link_id, entra_id) for link_id, entra_id in session.execute(
                select(UserLink.id, UserLink.entra_object_id).where(UserLink.tenant_id == tenant_id)
                .order_by(UserLink.id))]
        answer = graph_answer([entra_id for _, entra_id in batch])
        presences = parse(answer)
        observed_at = datetime.now(UTC)
        with sessions.begin() as session:
            session.execute(insert(AppliedState), [
                {"user_link_id": link_id, "tenant_id": tenant_id, "target": target, "fields": fields,
                 "owned": [], "version": 3}
                for (link_id, _), starface in zip(batch, settled_states(presences, policy,
                                                                        observed_at), strict=True)
                for target, fields in ((Target.STARFACE.value, starface),
                                       (Target.TEAMS.value, TeamsApplied().to_json()))])
        link_ids = [link_id for link_id, _ in batch]

        def read(load: Callable[..., dict[Any, Any]]) -> Callable[[], object]:
            def step() -> object:
                with sessions.begin() as session:
                    return load(session, link_ids)
            return step

        rows = read(read_applied_states)()
        assert isinstance(rows, dict) and len(rows) == 2 * args.users
        by_entra_id = {presence.user_id: presence for presence in presences}
        memo = SettledUsers(max_users=args.users)
        settled = memo.of_tenant(tenant_id, policy)
        decided = poll._decide(policy, batch, by_entra_id, rows, observed_at, settled)
        if decided:
            raise SystemExit(f"{len(decided)} users would be updated: the rows are not settled")
        assert memo.users == args.users, "every user's answer is remembered"

        def skip_settled() -> object:
            with sessions.begin() as session:
                (users, _, _), = poll._undecided(memo, session, [(tenant_id, batch, presences, observed_at)],
                                                 {tenant_id: (tenant, policy)})
            assert not users, "a settled batch leaves nobody to decide"
            return users

        if args.decide_only is not None:
            engine.dispose()
            for _ in range(args.decide_only):
                poll._decide(policy, batch, by_entra_id, rows, observed_at)
            sys.stdout.write(json.dumps({"users": args.users, "decide_batches": args.decide_only}) + "\n")
            return 0
        progress(f"decide: {args.users} users with their applied rows; timing {ROUNDS} rounds")
        per_user = {
            "read_orm": thread_cpu_us(read(load_applied_states), args.users, args.repeats),
            "read_rows": thread_cpu_us(read(read_applied_states), args.users, args.repeats),
            "parse": thread_cpu_us(lambda: parse(answer), args.users, args.repeats),
            "decide": thread_cpu_us(lambda: poll._decide(policy, batch, by_entra_id, rows, observed_at),
                                    args.users, args.repeats),
            "settled": thread_cpu_us(skip_settled, args.users, args.repeats),
        }
        engine.dispose()
    with_orm = per_user["read_orm"] + per_user["parse"] + per_user["decide"]
    with_rows = per_user["read_rows"] + per_user["parse"] + per_user["decide"]
    result = {
        "method": "bench/decide.py: one batch, every user with both applied rows, nothing changed; CPU "
                  f"time of this thread, best of {ROUNDS} rounds of {args.repeats} batches",
        "users": args.users, "cpu_us_per_user": per_user,
        "records_per_cpu_s": {"read_orm_parse_decide": round(1e6 / with_orm),
                              "read_rows_parse_decide": round(1e6 / with_rows),
                              "parse_settled": round(1e6 / (per_user["parse"] + per_user["settled"]))},
        "database": database,
    }
    write_and_print(result, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
