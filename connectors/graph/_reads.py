"""`PresenceReads`: the presence reads of many tenants, in flight together in one thread.

A packed poll (sync/poll.py) reads the presences of up to 80 small tenants, each from its own Microsoft
tenant, so their round trips should overlap. Threads did that, but every socket call of every read
handed the GIL to another thread: with 8 threads a 25-user read cost 0.79 ms of worker CPU against
0.43 ms one after another, and a worker polling 2,000 small tenants spent 28 % less CPU per tenant-cycle
with its reads one after another (bench/scale.py, same host window). httpx's asyncio transport cost
more still (1.0 ms a read). aiohttp on one event loop per thread, with its HTTP parser in C: 0.29 ms a
read with 8 in flight. The loop is uvloop's (in C): a third of a polling child's CPU was asyncio's own
loop, and with uvloop a worker spent 8 % less per tenant-cycle (bench/results/compare-scale-uvloop.json).

Only the sending is here. The tenant's GraphClient prepares each request (its token, its Retry-After
block) and judges each answer (errors, the 429 block, a 401's one retry with a fresh token, the trace
log), so a read comes out as if the client had sent it itself. The connections follow the same rules as
the GraphClient's: the egress guard checks every address connected to, no proxy or .netrc from the
environment, no cookies kept (one customer's must never travel with another's requests), redirects
not followed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import aiohttp
import uvloop

from connectors import egress
from connectors.graph._client import GraphClient, PresenceRequest
from connectors.graph._errors import GraphAddressRefused, GraphUnavailable
from connectors.graph._models import Presence
from connectors.tls import tls_context

logger = logging.getLogger(__name__)

Stamp = TypeVar("Stamp")
#: One read's answer as it came off the wire: status, headers, body, when it was sent (perf_counter).
_Answer = tuple[int, dict[str, str], bytes, float]


class PresenceReads:
    """Reads presences for several (GraphClient, user ids) pairs at once, ``in_flight`` requests at a
    time. Each thread that reads gets its own event loop and connections (built on its first read), so
    the object may be shared by a process's threads; one thread reads one batch at a time."""

    def __init__(self, verify: str | bool = True, timeout: float = 10.0, in_flight: int = 8) -> None:
        self._verify, self._timeout, self.in_flight = verify, timeout, in_flight
        self._local = threading.local()
        self._opened: list[tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]] = []
        self._lock = threading.Lock()

    def read(self, reads: Sequence[tuple[GraphClient, Sequence[str]]],
             stamp: Callable[[], Stamp]) -> list[tuple[list[Presence] | Exception, Stamp]]:
        """Per read, in order: the presences (at most 650 users a read) or the GraphError (or other
        exception) that stopped it, and ``stamp()`` taken when its answer arrived (or it failed). One
        read's failure does not touch the others."""
        prepared: list[PresenceRequest | Exception] = []
        for client, ids in reads:
            try:
                prepared.append(client.presence_request(ids))
            except Exception as exc:  # noqa: BLE001 - e.g. blocked or sign-in failed: the others go on
                prepared.append(exc)
        loop, session = self._session()
        sent = loop.run_until_complete(self._send_all(session, prepared, stamp))
        results: list[tuple[list[Presence] | Exception, Stamp]] = []
        for (client, _), request, (answer, stamped) in zip(reads, prepared, sent, strict=True):
            results.append((self._judge(client, request, answer), stamped))
        return results

    async def _send_all(self, session: aiohttp.ClientSession, prepared: list[PresenceRequest | Exception],
                        stamp: Callable[[], Stamp]) -> list[tuple[_Answer | Exception, Stamp]]:
        return await asyncio.gather(*(self._send(session, request, stamp) for request in prepared))

    async def _send(self, session: aiohttp.ClientSession, request: PresenceRequest | Exception,
                    stamp: Callable[[], Stamp]) -> tuple[_Answer | Exception, Stamp]:
        if isinstance(request, Exception):
            return request, stamp()
        started = time.perf_counter()
        try:
            async with session.post(request.url, data=request.body, headers=request.headers,
                                    allow_redirects=False) as response:
                body = await response.read()
                return (response.status, dict(response.headers), body, started), stamp()
        except Exception as exc:  # noqa: BLE001 - judged in the caller's thread with the client at hand
            return exc, stamp()

    @staticmethod
    def _judge(client: GraphClient, request: PresenceRequest | Exception,
               answer: _Answer | Exception) -> list[Presence] | Exception:
        if isinstance(request, Exception):
            return request
        try:
            if isinstance(answer, Exception):
                client.requests_made += 1  # sent, or tried to be (as GraphClient._send counts)
                raise _graph_error(client, request, answer) from answer
            status, headers, body, started = answer
            return client.presences_answered(request, status, headers, body, started)
        except Exception as exc:  # noqa: BLE001 - the read's outcome, for the caller to record
            return exc

    def _session(self) -> tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]:
        opened: tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession] | None = getattr(
            self._local, "opened", None)
        if opened is None:
            loop = uvloop.new_event_loop()
            opened = (loop, loop.run_until_complete(self._open()))
            self._local.opened = opened
            with self._lock:
                self._opened.append(opened)
        return opened

    async def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=tls_context(self._verify), limit=self.in_flight, keepalive_timeout=60,
            # Addresses one after another, each checked by the egress guard before its socket is opened
            # (happy eyeballs would race them, and a refusal would be one failure among others).
            happy_eyeballs_delay=None, socket_factory=egress.socket_factory())
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout, sock_read=self._timeout),
            skip_auto_headers=("Accept-Encoding",))  # as the GraphClient's own requests: no compression

    def close(self) -> None:
        """Closes every thread's connections and event loop."""
        with self._lock:
            opened, self._opened = self._opened, []
        for loop, session in opened:
            loop.run_until_complete(session.close())
            loop.close()
        self._local = threading.local()


def _graph_error(client: GraphClient, request: PresenceRequest, exc: Exception) -> Exception:
    """What the GraphClient raises for the same failure of its own send (GraphClient._send)."""
    if isinstance(exc, egress.InternalAddressRefused):
        return GraphAddressRefused.for_url(client.graph_base_url, str(exc))
    if isinstance(exc, asyncio.TimeoutError):
        return GraphUnavailable(f"Graph timed out: {request.call}")
    if isinstance(exc, aiohttp.ClientError):
        return GraphUnavailable(f"Graph unreachable: {type(exc).__name__}")
    return exc
