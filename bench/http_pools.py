"""What choosing a connection costs a STARFACE client: one httpx client of N kept connections against
``ClientsByThread`` (connectors/http_clients.py: a client per 4 connections, one per thread).

    python bench/http_pools.py [--threads 32] [--requests 200] [--rounds 5]

N threads (as an update batch runs them under a PBX limit of N in flight) each send ``--requests`` small
GETs to a local HTTP server (the standard library's, in its own process, so its CPU is not counted) through
either arrangement, alternating A and B ``--rounds`` times. Figure: CPU time of this process (all its
threads) per request, median of the rounds; the HTTP work is the same in both, so the difference is the
pool's bookkeeping.

Prints ONE JSON object (also written to bench/results/http_pools.json).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import bench.* and connectors.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx  # noqa: E402

from bench.harness import progress, write_and_print  # noqa: E402
from connectors.http_clients import ClientsByThread, client_limits  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "http_pools.json"

_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _run(client_of: Callable[[], httpx.Client], threads: int, requests: int, url: str) -> float:
    """CPU microseconds of this process per request, ``threads`` threads of ``requests`` each."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(requests):
            client_of().get(url).raise_for_status()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    cpu = time.process_time()
    start.wait()
    for thread in workers:
        thread.join()
    return (time.process_time() - cpu) * 1e6 / (threads * requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200, help="requests per thread and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/rest/users/1/phoneconfig"  # type: ignore[union-attr]
        one = httpx.Client(limits=client_limits(args.threads))
        split = ClientsByThread(lambda limits: httpx.Client(limits=limits), args.threads)
        figures: dict[str, list[float]] = {"one_client": [], "clients_by_thread": []}
        _run(lambda: one, args.threads, 20, url)  # warm: connections open in both
        _run(split.client, args.threads, 20, url)
        for round_ in range(args.rounds):
            progress(f"http pools: round {round_ + 1} of {args.rounds}")
            figures["one_client"].append(_run(lambda: one, args.threads, args.requests, url))
            figures["clients_by_thread"].append(_run(split.client, args.threads, args.requests, url))
        one.close()
        split.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    medians = {name: round(statistics.median(values), 1) for name, values in figures.items()}
    result = {
        "method": (f"{args.threads} threads x {args.requests} GETs to a local stdlib HTTP server in another "
                   f"process, alternating one httpx client of {args.threads} kept connections and "
                   f"ClientsByThread ({len(split)} clients); CPU time of this process per request, median "
                   f"of {args.rounds} rounds"),
        "cpu_us_per_request": medians,
        "rounds": {name: [round(v, 1) for v in values] for name, values in figures.items()},
        "ratio": round(medians["clients_by_thread"] / medians["one_client"], 3),
    }
    write_and_print(result, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
