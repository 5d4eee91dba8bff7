"""Several small httpx transports for one host instead of one large one, each thread keeping its own,
and the one call that sends a request through one of them.

httpx's connection pool looks at every connection it holds when a request starts and when a response is
closed. With the PBX gate opened to 32 requests in flight, one client of 32 kept connections spent more
CPU choosing a connection than on the requests' HTTP itself: 10-15 % of an apply worker's CPU in a
2,000-change burst (issue 14). Split into clients of ``PER_CLIENT`` connections, each request looks at a
handful. A thread is given a client the first time it asks (round robin) and keeps it; the clients and
their kept-alive connections outlive the threads.

The STARFACE clients send through the transport (``send``), not an ``httpx.Client``: with no redirects to
follow, no cookies, auth or hooks of ours, the client's layers around the transport were a sixth of a
request's CPU (bench/http_pools.py: 1,221 -> 1,023 us per request at 32 threads), and a burst makes
three requests per change.
"""

from __future__ import annotations

import itertools
import math
import ssl
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import httpx

from connectors import egress

#: Connections each client keeps alive: what a lane of one user's requests and a few neighbours need.
PER_CLIENT = 4
#: Requests a STARFACE client sends at once by default: the PBX gate's default limit (config/settings.py).
DEFAULT_CONNECTIONS = 4


def client_limits(in_flight: int) -> httpx.Limits:
    """One client's pool: ``in_flight`` connections kept alive, more opened (and closed after use) rather
    than a request waiting for one."""
    return httpx.Limits(max_connections=max(100, in_flight), max_keepalive_connections=in_flight)


#: What httpx.Client would add to every request (its defaults), so the PBX sees the same requests.
DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ClientsByThread(Generic[C]):
    """Clients (or transports) for ``in_flight`` requests at once, ``PER_CLIENT`` connections each, handed
    to threads."""

    def __init__(self, build: Callable[[httpx.Limits], C], in_flight: int) -> None:
        per_client = min(PER_CLIENT, max(1, in_flight))
        self._clients = [build(client_limits(per_client))
                         for _ in range(max(1, math.ceil(in_flight / per_client)))]
        self._handed_out = itertools.count()
        self._thread = threading.local()

    def __len__(self) -> int:
        return len(self._clients)

    def client(self) -> C:
        """This thread's client."""
        index: int | None = getattr(self._thread, "index", None)
        if index is None:
            index = self._thread.index = next(self._handed_out) % len(self._clients)
        return self._clients[index]

    def close(self) -> None:
        for client in self._clients:
            client.close()


def transports_for(verify: ssl.SSLContext | str | bool, in_flight: int,
                   given: httpx.BaseTransport | None = None) -> ClientsByThread[httpx.BaseTransport]:
    """A STARFACE client's transports for ``in_flight`` requests at once: refusing internal addresses
    while the process does (connectors/egress.py), else httpx's own; ``given`` (a test's) alone."""
    if given is not None:
        return ClientsByThread(lambda _: given, 1)

    def build(limits: httpx.Limits) -> httpx.BaseTransport:
        return egress.transport_for(verify, limits) or httpx.HTTPTransport(verify=verify, limits=limits)

    return ClientsByThread(build, in_flight)


def timeouts(seconds: float) -> dict[str, float | None]:
    """A request's ``timeout`` extension (connect, read, write, pool), as an httpx.Client sets it."""
    return httpx.Timeout(seconds).as_dict()


def send(transport: httpx.BaseTransport, request: httpx.Request) -> httpx.Response:
    """Sends ``request`` through ``transport`` and reads the whole answer (the connection goes back to the
    pool); raises httpx's errors as a client would (httpx.TimeoutException, httpx.HTTPError)."""
    response = transport.handle_request(request)
    try:
        response.read()
    finally:
        response.close()
    response.request = request
    return response
