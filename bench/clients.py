"""What a worker process pays to hold the clients of many tenants: CPU and memory per tenant.

    python bench/clients.py [--tenants 500] [--guarded]

Builds, in this process, what a worker builds for each tenant it serves: a Graph client, a STARFACE
REST client and a bridge client, with the production trust setting (verify=True: the system's CA
bundle) and, with ``--guarded``, the production egress guard. Nothing is sent. Prints ONE JSON object:
CPU ms and RSS MB per tenant (the process's own CPU time and resident memory before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the code of the repository it lives in
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.procstat import this_machine  # noqa: E402
from connectors import egress  # noqa: E402
from connectors.graph import GraphClient  # noqa: E402
from connectors.starface import StarfaceBridgeClient, StarfaceRestClient  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--guarded", action="store_true", help="with the production egress guard")
    args = parser.parse_args(argv)
    egress._refuse_internal = args.guarded  # what `refuse_internal_addresses(True)` sets in production
    clients: list[Any] = []
    rss_before, cpu_before = rss_mb(), time.process_time()
    for n in range(args.tenants):
        clients.append(GraphClient(f"directory-{n}", f"client-{n}", "secret"))
        clients.append(StarfaceRestClient(f"https://pbx{n}.example.com", "admin", "password"))
        clients.append(StarfaceBridgeClient(f"https://pbx{n}.example.com", "admin", "password", secret="s"))
        if (n + 1) % 100 == 0:
            print(f"[clients] {n + 1} tenants", file=sys.stderr, flush=True)
    cpu_s, rss = time.process_time() - cpu_before, rss_mb() - rss_before
    result = {"tenants": args.tenants, "guarded": args.guarded, "clients_per_tenant": 3,
              "cpu_ms_per_tenant": round(1000 * cpu_s / args.tenants, 3),
              "rss_mb_per_tenant": round(rss / args.tenants, 4),
              "machine": this_machine()}
    for client in clients:
        client.close()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
