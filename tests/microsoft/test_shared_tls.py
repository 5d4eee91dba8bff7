"""Every client of a process shares one TLS context per CA bundle: loading certifi's bundle costs about
29 ms of CPU and 0.9 MB per context, and a worker holds a Graph, a STARFACE REST and a bridge client per
tenant (thousands of tenants per worker in a hosted deployment)."""

from __future__ import annotations

import ssl
from typing import Any

import certifi
import pytest

from connectors import egress
from connectors.graph import GraphClient
from connectors.starface import StarfaceBridgeClient, StarfaceRestClient
from connectors.tls import tls_context


def _count_context_builds(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Each call of ssl.create_default_context (httpx builds its contexts with it) loads a CA bundle."""
    built: list[Any] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    return built


@pytest.mark.parametrize("refuse_internal", [False, True], ids=["embedded", "guarded egress"])
def test_many_tenants_clients_load_the_ca_bundle_at_most_once(
    monkeypatch: pytest.MonkeyPatch, refuse_internal: bool
) -> None:
    monkeypatch.setattr(egress, "_refuse_internal", refuse_internal)
    built = _count_context_builds(monkeypatch)
    clients: list[Any] = []
    for n in range(10):
        clients.append(GraphClient(f"directory-{n}", f"client-{n}", "secret"))
        clients.append(StarfaceRestClient(f"https://pbx{n}.example.com", "admin", "password"))
        clients.append(StarfaceBridgeClient(f"https://pbx{n}.example.com", "admin", "password",
                                            secret="bridge-secret"))
    try:
        assert len(built) <= 1, built  # 30 clients: the first may build the shared context, none other
    finally:
        for client in clients:
            client.close()


def test_a_private_ca_gets_its_own_context_and_a_given_context_is_kept() -> None:
    own = ssl.create_default_context()
    assert tls_context(own) is own
    bundle = certifi.where()  # any CA file stands for a private one (test systems, the simulators)
    assert tls_context(bundle) is tls_context(bundle)
    assert tls_context(bundle) is not tls_context(True)
    assert tls_context(True) is tls_context(True)
    assert tls_context(False) is not tls_context(True)
    assert tls_context(False).verify_mode == ssl.CERT_NONE
