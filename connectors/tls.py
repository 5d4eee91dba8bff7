"""One TLS context per trust setting, shared by every client of the process.

Loading a CA bundle costs about 29 ms of CPU and 0.9 MB per context (certifi's bundle, measured with
httpx 0.28), and every Graph, STARFACE REST and bridge client holds its own connection pool: a worker
with clients for 2,000 tenants built a minute's worth of identical contexts and kept 2 GB of them. A
context is safe to share between connections and threads; our clients speak HTTP/1.1 only, so the ALPN
list httpcore sets on it for each connection is the same for all of them.
"""

from __future__ import annotations

import functools
import ssl

import httpx


def tls_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    """``verify`` as httpx wants it: a context (a CA bundle path and True/False are deprecated there),
    the same one for every client of the process that trusts the same CAs."""
    return verify if isinstance(verify, ssl.SSLContext) else _shared_context(verify)


@functools.lru_cache(maxsize=16)
def _shared_context(verify: str | bool) -> ssl.SSLContext:
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)  # a private CA (test systems, the simulators)
    return httpx.create_ssl_context(verify=verify)  # True: certifi's bundle (or SSL_CERT_FILE/_DIR)
