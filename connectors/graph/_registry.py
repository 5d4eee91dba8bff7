"""One `GraphClient` per (directory, app, secret, endpoints) per worker process.

Celery tasks are short, but MSAL's token cache and httpx's keep-alive only pay off in a long-lived
client, so tasks ask `get_graph_client(...)` instead of constructing one. A changed secret gives a new
key (the secret or certificate is fingerprinted, never stored in the key) and closes the client built with
the old one.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from connectors.graph._client import GraphClient
from connectors.graph._credentials import CertificateCredential, ClientCredential

_clients: dict[tuple[str, ...], GraphClient] = {}
_lock = threading.Lock()


def _fingerprint(credential: ClientCredential) -> str:
    if isinstance(credential, CertificateCredential):
        return credential.fingerprint()
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


def get_graph_client(
    directory_id: str,
    client_id: str,
    client_secret: ClientCredential,
    *,
    login_base_url: str = "https://login.microsoftonline.com",
    graph_base_url: str = "https://graph.microsoft.com",
    verify: str | bool = True,
    **options: Any,
) -> GraphClient:
    """The process-wide client for these credentials and endpoints, created on first use."""
    key = (
        directory_id.lower(),
        client_id.lower(),
        _fingerprint(client_secret),
        login_base_url,
        graph_base_url,
        str(verify),
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            for old_key in [k for k in _clients if k[:2] == key[:2] and k[3:] == key[3:]]:
                _clients.pop(
                    old_key
                ).close()  # the secret changed: drop the client (and tokens) of the old one
            client = GraphClient(
                directory_id,
                client_id,
                client_secret,
                login_base_url=login_base_url,
                graph_base_url=graph_base_url,
                verify=verify,
                **options,
            )
            _clients[key] = client
        return client


def reset_graph_clients() -> None:
    """Close and forget every cached client (tests, worker shutdown)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
