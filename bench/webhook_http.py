"""What receiving one bridge event costs the web app as a whole: CPU of the `teamsconnect web` process per
webhook request, over real HTTP, with real Redis and PostgreSQL.

    python bench/webhook_http.py [--requests 1000] [--senders 4] [--kind echo|accepted]

`bench/webhook.py` times the receiver's own code in one thread; this one adds what a request costs around
it - uvicorn, the framework, the thread hop, the Redis round trips and the broker publish - which is most
of the web app's CPU in a burst (about 4,000 echoes of our own writes per 2,000 changes). It starts the web
app as its own process (as production and bench/pipeline.py do) on a fresh database with one bridge
tenant, and sends signed events from ``--senders`` threads over kept-alive connections, as a bridge does:
``echo`` events (DND events of origin "integration" whose write was noted first, as sync/echoes.py notes
ours) or ``accepted`` ones (queued for the events worker). Per round: the web process's CPU (/proc, user +
system) / requests; best of ``ROUNDS`` rounds. Redis: the test servers' databases
(TEAMSCONNECT_TEST_BROKER_URL and _COORDINATION_URL, flushed at start, as bench/pipeline.py does; do not
run both at once).

Prints ONE JSON object (also written to bench/results/webhook_http.json). Compare two revisions by running
the script in a worktree of each: the web app it starts is the code of the checkout it lies in.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import bench.* and tests.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import redis  # noqa: E402

from bench.harness import ROUNDS, bench_database, progress, write_and_print  # noqa: E402
from bench.procstat import cpu_seconds, this_machine  # noqa: E402
from connectors.starface.webhook import sign  # noqa: E402
from embedded.stack import BROKER_URL, COORDINATION_URL, _free_port, _spawn, _stop  # noqa: E402
from models.crypto import SecretBox, generate_key  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.secrets import read_secrets  # noqa: E402
from sync.coordination import RedisCoordination  # noqa: E402
from sync.echoes import OwnWrites  # noqa: E402
from tests.support.factories import make_tenant  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "webhook_http.json"
FIRST_ACCOUNT = 1001


def _signed_dnd_event(secret: str, account: int, on: bool) -> tuple[dict[str, str], bytes]:
    """Headers and body of a DND event of origin "integration" as the bridge signs it (contract v1)."""
    body = json.dumps({"eventId": uuid.uuid4().hex, "type": "dnd", "account": account, "login": str(account),
                       "occurredAt": int(time.time() * 1000), "origin": "integration", "dnd": on}).encode()
    stamp = str(int(time.time()))
    return {"X-TeamsConnect-Timestamp": stamp, "X-TeamsConnect-Signature": sign(secret, stamp, body),
            "Content-Type": "application/json"}, body


class _Sender:
    """One bridge sender thread's kept-alive connection to the web app."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        self._connection.request("POST", path, body=body, headers=headers)
        response = self._connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 202:
            raise RuntimeError(f"web app answered {response.status}: {answer}")
        return answer

    def close(self) -> None:
        self._connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per timed round")
    parser.add_argument("--senders", type=int, default=4, help="threads sending at once, one connection each")
    parser.add_argument("--kind", choices=["echo", "accepted"], default="echo")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for url in (BROKER_URL, COORDINATION_URL):
        redis.Redis.from_url(url).flushdb()
    key = generate_key()
    with bench_database() as (url, database):
        engine = make_engine(url)
        with make_session_factory(engine).begin() as session:
            tenant = make_tenant(session, SecretBox([key]), name="webhooks")
            tenant_id, secret = tenant.id, read_secrets(tenant, SecretBox([key])).bridge_secret or ""
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEAMSCONNECT_")}
        env.update({"TEAMSCONNECT_MODE": "embedded", "TEAMSCONNECT_DATABASE_URL": url,
                    "TEAMSCONNECT_BROKER_URL": BROKER_URL, "TEAMSCONNECT_REDIS_URL": COORDINATION_URL,
                    "TEAMSCONNECT_ENCRYPTION_KEYS": key, "TEAMSCONNECT_LOG_LEVEL": "WARNING"})
        port = _free_port()
        web = _spawn(["web", "--host", "127.0.0.1", "--port", str(port)], env, port, "the web app")
        own = OwnWrites(RedisCoordination(redis.Redis.from_url(COORDINATION_URL)), tenant_id)
        senders = [_Sender(port) for _ in range(args.senders)]
        answers: list[str] = []
        try:
            def one(index: int) -> None:
                account, on = FIRST_ACCOUNT + index % 500, bool(index % 2)
                if args.kind == "echo":
                    own.note(account, dnd=on, chat_message=None, telephony=None)
                headers, body = _signed_dnd_event(secret, account, on)
                answer = senders[index % args.senders].post(f"/hooks/starface/{tenant_id}", headers, body)
                answers.append(next(iter(answer)))

            senders_n = args.senders

            def round_of(requests: int) -> float:
                before = cpu_seconds([web.pid])
                with ThreadPoolExecutor(max_workers=args.senders) as pool:
                    # one sender thread per connection: request i goes to connection i % senders
                    lanes = [pool.submit(lambda lane=lane: [one(i) for i in range(lane, requests, senders_n)])
                             for lane in range(senders_n)]
                    for lane in lanes:
                        lane.result()  # a refused request fails the benchmark
                return (cpu_seconds([web.pid]) - before) / requests * 1e6

            round_of(200)  # warm: connections, the tenant kept, the script loaded
            progress(f"webhook_http: {args.kind} events answered {sorted(set(answers))}; timing {ROUNDS} "
                     f"rounds of {args.requests}")
            per_round = [round_of(args.requests) for _ in range(ROUNDS)]
        finally:
            for sender in senders:
                sender.close()
            _stop(web)
    result = {
        "method": f"bench/webhook_http.py: signed DND events ({args.kind}) POSTed to `teamsconnect web` from "
                  f"{args.senders} threads over kept-alive connections; CPU of the web process (/proc) per "
                  f"request, best of {ROUNDS} rounds of {args.requests}",
        "kind": args.kind, "answers": sorted(set(answers)),
        "web_cpu_us_per_request": round(min(per_round), 1),
        "web_cpu_us_per_request_rounds": [round(x, 1) for x in per_round],
        "database": database, "machine": this_machine(),
    }
    write_and_print(result, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
