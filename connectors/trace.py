"""TRACE, the STARFACE module's lowest log level: one summary line per request to Microsoft or the PBX.

A summary says which call, what came back, how long it took and how big it was - never headers, bodies,
query strings or the bridge's arguments, which is where tokens, passwords and the bridge secret travel.
Tenants switch it on with log level TRACE (below DEBUG); everyone else pays one level check per request.
"""

from __future__ import annotations

import logging
import time

TRACE = 5
logging.addLevelName(TRACE, "TRACE")


def trace_exchange(
    logger: logging.Logger, system: str, call: str, status: int, started: float, sent: int, received: int,
) -> None:
    """Logs ``"<system> <call> -> <status> in <ms> ms (<sent> bytes out, <received> bytes in)"`` at TRACE.

    `call` must already be free of secrets (a method and a path without query, or an entry point name);
    `started` is a ``time.perf_counter()`` reading taken just before the request was sent.
    """
    if logger.isEnabledFor(TRACE):
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.log(TRACE, "%s %s -> %s in %.1f ms (%d bytes out, %d bytes in)",
                   system, call, status, elapsed_ms, sent, received)
