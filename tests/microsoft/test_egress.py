"""A tenant's custom login or Graph host that leads into the service's own network is refused at connect
time, as a PBX's is (tests/starface/test_egress.py): the URL check when a tenant is saved sees only the
name. Nothing is sent, and the error names the host, the address and the fix."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from connectors import egress
from connectors.graph import GraphAddressRefused, GraphClient
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator

NAME = "login.customer-lab.example"


@pytest.fixture
def guard_on() -> Iterator[None]:
    egress.refuse_internal_addresses(True)
    yield
    egress.refuse_internal_addresses(False)


def _client(sim: MicrosoftSimulator, tenant: dict[str, Any], base_url: str,
            transport: Any = None) -> GraphClient:
    app = tenant["apps"][0]
    return GraphClient(tenant["id"], app["clientId"], app["secret"], login_base_url=base_url,
                       graph_base_url=base_url, verify=sim.ca_path, transport=transport)


def test_a_process_that_refuses_internal_addresses_sends_nothing_to_a_loopback_login(
    guard_on: None, sim: MicrosoftSimulator, control: MicrosoftSimControl, tenant: dict[str, Any],
) -> None:
    graph = _client(sim, tenant, sim.base_url)
    try:
        with pytest.raises(GraphAddressRefused) as raised:
            graph.get_presences([tenant["users"][0]["id"]])
    finally:
        graph.close()
    message = str(raised.value)
    assert f"Microsoft at {sim.base_url}" in message and "127.0.0.1, a loopback address" in message
    assert "TEAMSCONNECT_ALLOW_PRIVATE_URLS=true" in message and tenant["apps"][0]["secret"] not in message
    assert raised.value.permanent
    assert control.count("token") == 0 and control.count("getPresencesByUserId") == 0


def test_a_host_name_resolving_to_a_private_address_is_refused_before_the_token_request(
    sim: MicrosoftSimulator, control: MicrosoftSimControl, tenant: dict[str, Any],
) -> None:
    def resolve(host: str, port: int) -> list[str]:
        assert host == NAME
        return ["10.1.2.3"]

    base_url = f"https://{NAME}:{urlsplit(sim.base_url).port}"
    graph = _client(sim, tenant, base_url,
                    egress.guarded_transport(ssl.create_default_context(cafile=sim.ca_path), resolve))
    try:
        with pytest.raises(GraphAddressRefused) as raised:
            graph.get_presences([tenant["users"][0]["id"]])
    finally:
        graph.close()
    assert f"{NAME} resolves to 10.1.2.3, a private address" in str(raised.value)
    assert control.count("token") == 0


def test_a_proxy_named_in_the_environment_is_not_used_for_login_or_graph(
    monkeypatch: pytest.MonkeyPatch, sim: MicrosoftSimulator, control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    """The egress guard checks the address it connects to, which a proxy would hide; and the Graph
    requests go to the connection pool directly, so a proxy could only ever carry the login."""
    with socket.socket() as closed:  # a port nothing listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    graph = _client(sim, tenant, sim.base_url)
    try:
        presences = graph.get_presences([tenant["users"][0]["id"]])
    finally:
        graph.close()
    assert [p.user_id for p in presences] == [tenant["users"][0]["id"].lower()]
    assert control.count("token") == 1 and control.count("getPresencesByUserId") == 1
