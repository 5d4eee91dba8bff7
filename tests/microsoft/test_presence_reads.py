"""Several tenants' presence reads in flight together (connectors/graph/_reads.py): each read comes out as
if its GraphClient had sent it - the same presences, the same errors, the same 429 block, the same one
retry with a fresh token - and the connections keep the egress guard, no cookies and the timeouts."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors import egress
from connectors.graph import (
    GraphAddressRefused,
    GraphAuthError,
    GraphClient,
    GraphThrottled,
    GraphUnavailable,
    PresenceReads,
)
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator
from tests.microsoft.conftest import FakeClock


def _counter() -> Callable[[], int]:
    stamps = iter(range(1_000_000))
    return lambda: next(stamps)


@pytest.fixture
def reads(sim: MicrosoftSimulator) -> Iterator[PresenceReads]:
    sender = PresenceReads(sim.ca_path, timeout=0.5)
    yield sender
    sender.close()


def _ids(tenant: dict[str, Any], *users: int) -> list[str]:
    return [tenant["users"][index]["id"] for index in users]


def test_each_tenants_read_gives_what_its_client_would(
    reads: PresenceReads, make_client: Callable[..., GraphClient], control: MicrosoftSimControl,
    tenant: dict[str, Any], other_tenant: dict[str, Any],
) -> None:
    control.teams(tenant["users"][1]["id"], "sign_in")
    control.teams(tenant["users"][1]["id"], "call_start")
    first, second = make_client(tenant), make_client(other_tenant)
    asked = [(first, _ids(tenant, 0, 1, 2)), (second, _ids(other_tenant, 0, 1)),
             (first, _ids(other_tenant, 3))]  # another tenant's user: absent, as from Graph itself
    results = reads.read(asked, _counter())
    assert [outcome for outcome, _ in results] == [client.get_presences(ids) for client, ids in asked]
    assert [len(outcome) for outcome, _ in results] == [3, 2, 0]  # type: ignore[arg-type]
    busy = {p.user_id: p.availability for p in results[0][0]}  # type: ignore[union-attr]
    assert busy[tenant["users"][1]["id"]] == "Busy"
    assert sorted(stamp for _, stamp in results) == [0, 1, 2]  # stamped as each answer came
    assert first.requests_made == 4 and second.requests_made == 2
    entries = control.requests(route="getPresencesByUserId")["entries"]
    assert [entry for entry in entries if entry["cookie"]] == []


def test_a_429_blocks_only_its_client_and_nothing_is_sent_during_the_block(
    reads: PresenceReads, make_client: Callable[..., GraphClient], control: MicrosoftSimControl,
    tenant: dict[str, Any], other_tenant: dict[str, Any], clock: FakeClock,
) -> None:
    throttled, fine = make_client(tenant, clock=clock), make_client(other_tenant)
    throttled.check_access()  # signed in: the fault hits the read
    control.configure(fractionalRetryAfter=True)
    control.add_fault("getPresencesByUserId", 429, retry_after=2.5, tenant=tenant["id"])
    results = reads.read([(throttled, _ids(tenant, 0)), (fine, _ids(other_tenant, 0))], _counter())
    blocked, read = results[0][0], results[1][0]
    assert isinstance(blocked, GraphThrottled) and blocked.retry_after == pytest.approx(2.5)
    assert isinstance(read, list) and len(read) == 1
    assert throttled.throttled_for == pytest.approx(2.5)
    sent = control.count("getPresencesByUserId")
    again = reads.read([(throttled, _ids(tenant, 0))], _counter())[0][0]
    assert isinstance(again, GraphThrottled) and control.count("getPresencesByUserId") == sent
    clock.now += 2.5
    assert len(reads.read([(throttled, _ids(tenant, 0))], _counter())[0][0]) == 1  # type: ignore[arg-type]


def test_an_expired_token_is_replaced_once_and_a_missing_permission_is_an_auth_error(
    reads: PresenceReads, make_client: Callable[..., GraphClient], control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    client = make_client(tenant)
    assert len(reads.read([(client, _ids(tenant, 0))], _counter())[0][0]) == 1  # type: ignore[arg-type]
    control.advance_clock(3600)  # Graph says 401 "expired" before MSAL thinks so
    assert len(reads.read([(client, _ids(tenant, 0))], _counter())[0][0]) == 1  # type: ignore[arg-type]
    assert control.count("token") == 2
    statuses = [entry["status"] for entry in control.requests(route="getPresencesByUserId")["entries"]]
    assert statuses == [200, 401, 200]
    control.set_roles(tenant["id"], tenant["apps"][0]["clientId"], ["User.Read.All"])
    refused = reads.read([(make_client(tenant), _ids(tenant, 0))], _counter())[0][0]  # its token: no role
    assert isinstance(refused, GraphAuthError) and "Presence.ReadWrite.All" in refused.fix


def test_5xx_timeouts_and_a_closed_port_are_unavailable(
    sim: MicrosoftSimulator, reads: PresenceReads, make_client: Callable[..., GraphClient],
    control: MicrosoftSimControl, tenant: dict[str, Any], clock: FakeClock,
) -> None:
    client = make_client(tenant, clock=clock)
    client.check_access()
    control.add_fault("getPresencesByUserId", 503, retry_after=4)
    unavailable = reads.read([(client, _ids(tenant, 0))], _counter())[0][0]
    assert isinstance(unavailable, GraphUnavailable) and unavailable.retry_after == 4
    assert client.throttled_for == 4
    clock.now += 4
    control.add_fault("getPresencesByUserId", None, delay_s=1.0)
    slow = reads.read([(client, _ids(tenant, 0))], _counter())[0][0]
    assert isinstance(slow, GraphUnavailable) and "timed out" in str(slow)
    with socket.socket() as closed:  # a port nothing listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    app = tenant["apps"][0]
    nowhere = GraphClient(tenant["id"], app["clientId"], app["secret"], login_base_url=sim.base_url,
                          graph_base_url=f"https://127.0.0.1:{port}", verify=sim.ca_path)
    unreachable = reads.read([(nowhere, _ids(tenant, 0)), (client, _ids(tenant, 0))], _counter())
    assert isinstance(unreachable[0][0], GraphUnavailable) and "unreachable" in str(unreachable[0][0])
    assert isinstance(unreachable[1][0], list)
    nowhere.close()


def test_the_egress_guard_refuses_an_internal_address_before_anything_is_sent(
    sim: MicrosoftSimulator, make_client: Callable[..., GraphClient], control: MicrosoftSimControl,
    tenant: dict[str, Any],
) -> None:
    client = make_client(tenant)
    client.check_access()  # signed in before the guard goes on: only the read is left to refuse
    sent = control.count("getPresencesByUserId")
    egress.refuse_internal_addresses(True)
    guarded = PresenceReads(sim.ca_path)
    try:
        refused = guarded.read([(client, _ids(tenant, 0))], _counter())[0][0]
    finally:
        guarded.close()
        egress.refuse_internal_addresses(False)
    assert isinstance(refused, GraphAddressRefused) and refused.permanent
    assert "127.0.0.1, a loopback address" in str(refused) and f"Microsoft at {sim.base_url}" in str(refused)
    assert control.count("getPresencesByUserId") == sent


def test_an_answer_that_is_not_a_json_object_is_unavailable_not_a_crash(
    make_client: Callable[..., GraphClient], tenant: dict[str, Any],
) -> None:
    """A 200 whose body is not Graph's (a proxy's error page, a cut connection) names what came back."""
    client = make_client(tenant)
    request = client.presence_request(_ids(tenant, 0))
    for body, what in ((b"<html>Bad gateway</html>", "not JSON"), (b"[]", "without a list of presences"),
                       (b'{"value": 3}', "without a list of presences")):
        with pytest.raises(GraphUnavailable, match=what):
            client.presences_answered(request, 200, {}, body, time.perf_counter())
