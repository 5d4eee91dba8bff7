"""Several small httpx clients for one host instead of one large one, each thread keeping its own.

httpx's connection pool looks at every connection it holds when a request starts and when a response is
closed. With the PBX gate opened to 32 requests in flight, one client of 32 kept connections spent more
CPU choosing a connection than on the requests' HTTP itself: 10-15 % of an apply worker's CPU in a
2,000-change burst (issue 14). Split into clients of ``PER_CLIENT`` connections, each request looks at a
handful. A thread is given a client the first time it asks (round robin) and keeps it; the clients and
their kept-alive connections outlive the threads.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable

import httpx

#: Connections each client keeps alive: what a lane of one user's requests and a few neighbours need.
PER_CLIENT = 4
#: Requests a STARFACE client sends at once by default: the PBX gate's default limit (config/settings.py).
DEFAULT_CONNECTIONS = 4


def client_limits(in_flight: int) -> httpx.Limits:
    """One client's pool: ``in_flight`` connections kept alive, more opened (and closed after use) rather
    than a request waiting for one."""
    return httpx.Limits(max_connections=max(100, in_flight), max_keepalive_connections=in_flight)


class ClientsByThread:
    """Clients for ``in_flight`` requests at once, ``PER_CLIENT`` connections each, handed to threads."""

    def __init__(self, build: Callable[[httpx.Limits], httpx.Client], in_flight: int) -> None:
        per_client = min(PER_CLIENT, max(1, in_flight))
        self._clients = [build(client_limits(per_client))
                         for _ in range(max(1, math.ceil(in_flight / per_client)))]
        self._handed_out = itertools.count()
        self._thread = threading.local()

    def __len__(self) -> int:
        return len(self._clients)

    def client(self) -> httpx.Client:
        """This thread's client."""
        index: int | None = getattr(self._thread, "index", None)
        if index is None:
            index = self._thread.index = next(self._handed_out) % len(self._clients)
        return self._clients[index]

    def close(self) -> None:
        for client in self._clients:
            client.close()
