"""User resolution by e-mail ($batch + $filter, paging, partial failure) and group members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.graph import GraphBadRequest, GraphClient, GraphThrottled
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator, make_seed, stable_id
from tests.microsoft.conftest import FakeClock


@pytest.fixture
def seed() -> dict[str, Any]:
    seed = make_seed(n_users=60, tenants=("contoso", "fabrikam"))
    contoso = seed["tenants"][0]
    contoso["users"] += [
        {
            "id": stable_id("upn-only"),
            "mail": None,
            "userPrincipalName": "Upn.Only@Contoso.example",
            "displayName": "No mailbox",
        },
        {
            "id": stable_id("twin-a"),
            "mail": "twin@contoso.example",
            "userPrincipalName": "twin-a@contoso.example",
            "displayName": "Twin A",
        },
        {
            "id": stable_id("twin-b"),
            "mail": "TWIN@contoso.example",
            "userPrincipalName": "twin-b@contoso.example",
            "displayName": "Twin B",
        },
        {
            "id": stable_id("quote"),
            "mail": "o'brien+pbx@contoso.example",
            "userPrincipalName": "ob@contoso.example",
            "displayName": "O'Brien",
        },
    ]
    contoso["groups"].append(
        {
            "id": stable_id("big"),
            "displayName": "Big",
            "members": [stable_id("contoso", "user", i) for i in range(60)]
            + [stable_id("contoso", "group", 0)],
        }
    )
    return seed


def test_it_matches_mail_then_upn_then_proxy_address(
    graph: GraphClient, control: MicrosoftSimControl
) -> None:
    found = graph.find_users_by_email(
        [
            "USER1@contoso.example",
            "upn.only@contoso.example",
            "u7@alias.contoso.example",
            "nobody@contoso.example",
            "twin@contoso.example",
            "O'Brien+pbx@contoso.example",
            "user0@fabrikam.example",
        ]
    )
    assert [u.id for u in found["user1@contoso.example"]] == [stable_id("contoso", "user", 1)]
    assert [u.id for u in found["upn.only@contoso.example"]] == [stable_id("upn-only")]
    assert [u.id for u in found["u7@alias.contoso.example"]] == [stable_id("contoso", "user", 7)]
    assert sorted(u.id for u in found["twin@contoso.example"]) == sorted(
        [stable_id("twin-a"), stable_id("twin-b")]
    )
    assert [u.display_name for u in found["o'brien+pbx@contoso.example"]] == ["O'Brien"]
    assert found["nobody@contoso.example"] == [] and found["user0@fabrikam.example"] == []
    assert control.count("$batch") == 2  # one for mail/UPN, one for the proxy addresses of the rest


def test_it_resolves_many_users_in_few_batches(graph: GraphClient, control: MicrosoftSimControl) -> None:
    emails = [f"user{i}@contoso.example" for i in range(60)]
    found = graph.find_users_by_email(emails)
    assert all(len(found[e]) == 1 for e in emails)
    assert control.count("$batch") == 1 and control.count("users.list") == 9


def test_it_retries_only_throttled_batch_items(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, clock: FakeClock
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    client = make_client(clock=clock, sleep=sleep)
    control.configure(fractionalRetryAfter=True)
    control.add_fault("users.list", 429, retry_after=1.5, count=2)
    emails = [f"user{i}@contoso.example" for i in range(60)]
    found = client.find_users_by_email(emails)
    assert all(len(found[e]) == 1 for e in emails)
    assert waits == [1.5]
    assert control.count("users.list") == 9 + 2 and control.count("$batch") == 2


def test_it_gives_up_when_the_wait_is_long(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, clock: FakeClock
) -> None:
    client = make_client(clock=clock, sleep=lambda s: pytest.fail("must not sleep"))
    control.add_fault("users.list", 429, retry_after=30)
    with pytest.raises(GraphThrottled) as caught:
        client.find_users_by_email(["user1@contoso.example"])
    assert caught.value.retry_after == 30


def test_it_follows_paging_of_group_members(graph: GraphClient, control: MicrosoftSimControl) -> None:
    members = graph.group_members(stable_id("big"), page_size=25)
    assert len({m.id for m in members}) == 60 and all(m.mail for m in members)  # the nested group is skipped
    assert control.count("groups.members") == 3


def test_it_refuses_page_sizes_graph_refuses(graph: GraphClient) -> None:
    with pytest.raises(GraphBadRequest) as caught:
        graph.group_members(stable_id("big"), page_size=1000)
    assert "between 1 and 999" in str(caught.value) and caught.value.permanent


def test_it_keeps_the_secret_out_of_the_clients_repr(sim: MicrosoftSimulator, tenant: dict[str, Any]) -> None:
    """Clients are cached per tenant by the worker runtime (sync/runtime.py); whatever logs one shows no
    secret."""
    app = tenant["apps"][0]
    options = {"login_base_url": sim.base_url, "graph_base_url": sim.base_url, "verify": sim.ca_path}
    client = GraphClient(tenant["id"], app["clientId"], app["secret"], **options)
    try:
        assert app["secret"] not in repr(client) and app["secret"] not in str(client)
    finally:
        client.close()


def test_it_seeds_reproducibly() -> None:
    assert make_seed(3) == make_seed(3)
