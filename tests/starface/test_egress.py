"""A PBX host name that leads into the service's own network is refused at connect time (issue 13, item 6):
the URL check when a tenant is saved sees only the name. The resolver is given here (no DNS in tests): its
answer is the input an attacker controls."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from config.settings import load_settings
from connectors import egress
from connectors.starface import StarfaceAddressRefused, StarfaceBridgeClient, StarfaceRestClient
from models.crypto import generate_key
from simulators.starface import StarfaceSimControl, StarfaceSimulator
from sync.runtime import build_runtime
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, BRIDGE_SECRET

NAME = "pbx.customer.example"


def _resolving_to(*addresses: str) -> egress.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        assert host == NAME
        return list(addresses)
    return resolve


def _url_by_name(sim: StarfaceSimulator) -> str:
    return f"http://{NAME}:{urlsplit(sim.base_url).port}"


@pytest.fixture
def guard_on() -> Iterator[None]:
    egress.refuse_internal_addresses(True)
    yield
    egress.refuse_internal_addresses(False)


@pytest.mark.parametrize(("addresses", "refused", "why"), [
    (("127.0.0.1",), "127.0.0.1", "a loopback address"),
    (("10.20.30.40",), "10.20.30.40", "a private address"),
    (("169.254.169.254",), "169.254.169.254", "a link-local address"),
    (("93.184.215.14", "192.168.178.2"), "192.168.178.2", "a private address"),  # every answer is checked
    (("::ffff:10.0.0.1",), "::ffff:10.0.0.1", "a private address"),
])
def test_it_refuses_a_name_that_resolves_to_an_internal_address_before_sending_anything(
    sim: StarfaceSimulator, control: StarfaceSimControl, addresses: tuple[str, ...], refused: str, why: str,
) -> None:
    transport = egress.guarded_transport(False, _resolving_to(*addresses))
    with StarfaceRestClient(_url_by_name(sim), ADMIN_LOGIN, ADMIN_PASSWORD, transport=transport) as rest, \
            pytest.raises(StarfaceAddressRefused) as raised:
        rest.list_users()

    message = str(raised.value)
    assert f"{NAME} resolves to {refused}, {why}" in message
    assert "TEAMSCONNECT_ALLOW_PRIVATE_URLS=true" in message and ADMIN_PASSWORD not in message
    assert raised.value.permanent
    assert control.request_log() == []  # not even the login's nonce request left the service


def test_the_bridge_is_refused_the_same_way(sim: StarfaceSimulator, control: StarfaceSimControl) -> None:
    transport = egress.guarded_transport(False, _resolving_to("127.0.0.1"))
    with StarfaceBridgeClient(_url_by_name(sim), ADMIN_LOGIN, ADMIN_PASSWORD, secret=BRIDGE_SECRET,
                              transport=transport) as bridge, pytest.raises(StarfaceAddressRefused):
        bridge.ping()
    assert control.request_log() == []


def test_with_the_guard_on_every_client_without_a_transport_of_its_own_is_guarded(
    sim: StarfaceSimulator, control: StarfaceSimControl, guard_on: None
) -> None:
    loopback = "127.0.0.1 resolves to 127.0.0.1, a loopback address"
    with StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD) as rest, \
            pytest.raises(StarfaceAddressRefused, match=loopback):
        rest.list_users()
    assert control.request_log() == []


def test_public_addresses_pass_and_the_guard_is_off_outside_production(sim: StarfaceSimulator) -> None:
    assert egress.internal_reason(ipaddress.ip_address("93.184.215.14")) is None
    assert not egress.refusing_internal_addresses()
    with StarfaceRestClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD) as rest:
        assert rest.list_users()  # embedded mode (the tests' own): the simulator on 127.0.0.1 is reached


@pytest.mark.parametrize(("allow_private", "guarded"), [("false", True), ("true", False)])
def test_production_switches_the_guard_on_unless_private_urls_are_allowed(
    allow_private: str, guarded: bool
) -> None:
    settings = load_settings({
        "TEAMSCONNECT_MODE": "production", "TEAMSCONNECT_DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
        "TEAMSCONNECT_REDIS_URL": "redis://127.0.0.1:1/0", "TEAMSCONNECT_BROKER_URL": "redis://127.0.0.1:1/1",
        "TEAMSCONNECT_ENCRYPTION_KEYS": generate_key(), "TEAMSCONNECT_ALLOW_PRIVATE_URLS": allow_private,
    })
    runtime = build_runtime(settings)  # connects to nothing until used
    try:
        assert egress.refusing_internal_addresses() is guarded
    finally:
        runtime.close()
        egress.refuse_internal_addresses(False)
