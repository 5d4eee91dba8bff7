"""What choosing a connection and httpx's client layers cost a STARFACE client: one httpx client of N kept
connections, ``ClientsByThread`` of httpx clients (connectors/http_clients.py: a client per 4
connections, one per thread) and ``ClientsByThread`` of transports sent through directly (``send``, as
the STARFACE clients do).

    python bench/http_pools.py [--threads 32] [--requests 200] [--rounds 5]

N threads (as an update batch runs them under a PBX limit of N in flight) each send ``--requests`` small
GETs to a local HTTP server (the standard library's, in its own process, so its CPU is not counted) through
each arrangement, in turn ``--rounds`` times. Figure: CPU time of this process (all its threads) per
request, median of the rounds; the HTTP exchange is the same in all, so the differences are the pool's
bookkeeping and the client's layers.

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
from connectors.http_clients import DEFAULT_HEADERS, ClientsByThread, client_limits, send, timeouts  # noqa: E402

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


def _through_clients(clients: Callable[[], httpx.Client], url: str) -> Callable[[], None]:
    return lambda: clients().get(url).raise_for_status()


def _through_transports(transports: Callable[[], httpx.BaseTransport], url: str) -> Callable[[], None]:
    extensions = {"timeout": timeouts(10.0)}
    return lambda: send(transports(), httpx.Request("GET", url, headers=DEFAULT_HEADERS,
                                                    extensions=extensions)).raise_for_status()


def _run(one_request: Callable[[], None], threads: int, requests: int) -> float:
    """CPU microseconds of this process per request, ``threads`` threads of ``requests`` each."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(requests):
            one_request()

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
        transports = ClientsByThread(lambda limits: httpx.HTTPTransport(limits=limits), args.threads)
        arrangements = {"one_client": _through_clients(lambda: one, url),
                        "clients_by_thread": _through_clients(split.client, url),
                        "transports_by_thread": _through_transports(transports.client, url)}
        figures: dict[str, list[float]] = {name: [] for name in arrangements}
        for one_request in arrangements.values():  # warm: connections open in all
            _run(one_request, args.threads, 20)
        for round_ in range(args.rounds):
            progress(f"http pools: round {round_ + 1} of {args.rounds}")
            for name, one_request in arrangements.items():
                figures[name].append(_run(one_request, args.threads, args.requests))
        one.close()
        split.close()
        transports.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    medians = {name: round(statistics.median(values), 1) for name, values in figures.items()}
    result = {
        "method": (f"{args.threads} threads x {args.requests} GETs to a local stdlib HTTP server in another "
                   f"process, in turn one httpx client of {args.threads} kept connections, ClientsByThread "
                   f"of {len(split)} httpx clients and ClientsByThread of {len(transports)} transports sent "
                   f"through directly; CPU time of this process per request, median of {args.rounds} rounds"),
        "cpu_us_per_request": medians,
        "rounds": {name: [round(v, 1) for v in values] for name, values in figures.items()},
        "ratio": round(medians["clients_by_thread"] / medians["one_client"], 3),
        "ratio_transports_to_clients": round(
            medians["transports_by_thread"] / medians["clients_by_thread"], 3),
    }
    write_and_print(result, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
