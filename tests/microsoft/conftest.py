"""Fixtures for the Microsoft side: a simulator on a free 127.0.0.1 port (TLS, test CA), its control
client, and Graph clients of our connector pointed at it. Two tenants (contoso, fabrikam) share one app,
so every test can check tenant isolation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.graph import GraphClient
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator, make_seed
from tests.support.clock import FakeClock  # the client's Retry-After gate runs on it


@pytest.fixture
def seed() -> dict[str, Any]:
    return make_seed(n_users=20, tenants=("contoso", "fabrikam"))


@pytest.fixture
def sim(seed: dict[str, Any]) -> Iterator[MicrosoftSimulator]:
    with MicrosoftSimulator(seed) as simulator:
        yield simulator


@pytest.fixture
def control(sim: MicrosoftSimulator) -> Iterator[MicrosoftSimControl]:
    client = MicrosoftSimControl(sim.base_url, verify=sim.ca_path)
    yield client
    client.close()


@pytest.fixture
def tenant(seed: dict[str, Any]) -> dict[str, Any]:
    return seed["tenants"][0]


@pytest.fixture
def other_tenant(seed: dict[str, Any]) -> dict[str, Any]:
    return seed["tenants"][1]


@pytest.fixture
def make_client(sim: MicrosoftSimulator, tenant: dict[str, Any]) -> Iterator[Callable[..., GraphClient]]:
    """Build a GraphClient for a seed tenant (default: contoso) against the simulator."""
    made: list[GraphClient] = []

    def build(
        for_tenant: dict[str, Any] | None = None,
        *,
        directory: str | None = None,
        secret: str | None = None,
        **options: Any,
    ) -> GraphClient:
        t = for_tenant or tenant
        app = t["apps"][0]
        client = GraphClient(
            directory or t["id"],
            app["clientId"],
            secret or app["secret"],
            login_base_url=sim.base_url,
            graph_base_url=sim.base_url,
            verify=sim.ca_path,
            **options,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture
def graph(make_client: Callable[..., GraphClient]) -> GraphClient:
    return make_client()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
