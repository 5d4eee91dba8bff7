"""Outgoing connections to customer-given hosts only at public addresses, checked where it counts: on the
address the connection is actually made to.

A tenant's STARFACE URL is checked when it is saved (tenants/schema.py), but a host *name* says nothing
about where it leads: `pbx.example.com` may resolve to 10.0.0.5 or 127.0.0.1, today or after a DNS change,
and the service would send the STARFACE login and the bridge secret into its own network (server-side
request forgery). In production (unless TEAMSCONNECT_ALLOW_PRIVATE_URLS) the process switches on
`refuse_internal_addresses`; the STARFACE clients then connect through `guarded_transport`, whose network
backend resolves the name itself, refuses if any address it got is internal, and connects to the address
it checked (no second lookup an attacker's DNS could answer differently). TLS still verifies the name.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from connectors.tls import tls_context

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses the name resolves to (socket.getaddrinfo by default; tests give their own).
Resolver = Callable[[str, int], list[str]]

_refuse_internal = False


class InternalAddressRefused(Exception):
    """A connection to `host` was refused because it resolves to an internal address."""

    def __init__(self, host: str, address: str, why: str) -> None:
        super().__init__(f"{host} resolves to {address}, {why}")
        self.host, self.address, self.why = host, address, why


def internal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (loopback, private, link-local, ...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for what, flag in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                       ("private", address.is_private), ("unspecified", address.is_unspecified),
                       ("multicast", address.is_multicast), ("reserved", address.is_reserved)):
        if flag:
            return f"a {what} address"
    return None if address.is_global else "a non-public address"


def refuse_if_internal(host: str, address: str) -> None:
    """Raises InternalAddressRefused if ``address`` (what ``host`` resolved to) is not a public one."""
    why = internal_reason(ipaddress.ip_address(address.split("%", 1)[0]))  # an IPv6 zone is no part of it
    if why is not None:
        raise InternalAddressRefused(host, address, why)


def refuse_internal_addresses(enabled: bool) -> None:
    """Switches the guard on or off for this process (sync.runtime.build_runtime does, from the settings)."""
    global _refuse_internal
    _refuse_internal = enabled


def refusing_internal_addresses() -> bool:
    return _refuse_internal


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class _PublicOnlyBackend(httpcore.SyncBackend):
    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            refuse_if_internal(host, address)
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the checking network backend (httpx has no parameter for one, so the
    connection pool is built here with httpcore's own, public, arguments)."""

    def __init__(self, verify: ssl.SSLContext | str | bool, resolve: Resolver, limits: httpx.Limits) -> None:
        super().__init__(verify=tls_context(verify))
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls_context(verify), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_PublicOnlyBackend(resolve))


def guarded_transport(verify: ssl.SSLContext | str | bool, resolve: Resolver = system_resolver,
                      limits: httpx.Limits | None = None) -> httpx.HTTPTransport:
    """A transport that connects only to public addresses (see the module docstring); ``limits`` as the
    client's own (a client given a transport no longer applies its ``limits``)."""
    return _GuardedTransport(verify, resolve, limits or httpx.Limits())


#: (family, type, proto, canonical name, socket address): what aiohttp's connector hands its socket factory.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def _public_socket(addr_info: AddrInfo) -> socket.socket:
    family, type_, proto, _, sockaddr = addr_info
    refuse_if_internal(str(sockaddr[0]), str(sockaddr[0]))  # the connector names no host here
    return socket.socket(family=family, type=type_, proto=proto)


def socket_factory() -> Callable[[AddrInfo], socket.socket] | None:
    """For aiohttp's connector (connectors/graph/_reads.py): while the process refuses internal addresses,
    a socket factory that refuses to open a socket for one. The connector calls it with each address it
    is about to connect to - a name's resolved addresses and an address given as the host alike - so
    the check is on the address the connection is made to, as the httpx backend's."""
    return _public_socket if _refuse_internal else None


def transport_for(verify: ssl.SSLContext | str | bool,
                  limits: httpx.Limits | None = None) -> httpx.HTTPTransport | None:
    """The transport a client should use for a customer-given host: guarded while the process refuses
    internal addresses, else None (httpx's default)."""
    return guarded_transport(verify, limits=limits) if _refuse_internal else None
