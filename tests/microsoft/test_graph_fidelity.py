"""Issue 12: the simulator answers like Graph v1.0 does ($select on every user property, 501 for
single-user-only properties on a list, @odata.count on the first page only, the default @odata.context,
integer and fractional Retry-After, a throttled $batch item under each documented outer status), and the
connector copes with each."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors.graph import GraphBadRequest, GraphClient
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator, make_seed, stable_id
from simulators.microsoft.user_schema import SINGLE_USER_ONLY, USER_PROPERTIES
from tests.microsoft.conftest import FakeClock


@pytest.fixture
def seed() -> dict[str, Any]:
    seed = make_seed(n_users=12, tenants=("contoso", "fabrikam"))
    seed["tenants"][0]["users"][0].update(
        {"department": "Sales", "city": "Berlin", "accountEnabled": False, "aboutMe": "PBX fan"}
    )
    return seed


@pytest.fixture
def raw_graph(sim: MicrosoftSimulator, tenant: dict[str, Any]) -> Iterator[httpx.Client]:
    """Plain HTTP against the simulated Graph with a real token of the contoso app."""
    app = tenant["apps"][0]
    verify = ssl.create_default_context(cafile=sim.ca_path)
    token = httpx.post(
        f"{sim.base_url}/{tenant['id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app["clientId"],
            "client_secret": app["secret"],
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=verify,
    ).json()["access_token"]
    with httpx.Client(
        base_url=f"{sim.base_url}/v1.0", verify=verify, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def test_it_selects_every_property_of_the_v1_user_type(raw_graph: httpx.Client) -> None:
    listable = [p for p in USER_PROPERTIES if p not in SINGLE_USER_ONLY]
    page = raw_graph.get("/users", params={"$select": ",".join(listable), "$top": "1"})
    assert page.status_code == 200
    assert set(page.json()["value"][0]) == set(listable)
    one = raw_graph.get(
        f"/users/{stable_id('contoso', 'user', 0)}", params={"$select": ",".join(USER_PROPERTIES)}
    )
    assert one.status_code == 200
    user = one.json()
    assert (user["department"], user["city"], user["accountEnabled"], user["aboutMe"]) == (
        "Sales",
        "Berlin",
        False,
        "PBX fan",
    )
    assert user["skills"] == [] and user["userType"] == "Member"


def test_it_answers_501_for_a_single_user_property_on_a_list(raw_graph: httpx.Client) -> None:
    for prop in ("aboutMe", "Skills", "mailboxSettings"):
        response = raw_graph.get("/users", params={"$select": f"id,{prop}"})
        assert response.status_code == 501, prop
        assert response.json()["error"]["code"] == "NotImplemented"
    unknown = raw_graph.get("/users", params={"$select": "id,favouriteColour"})
    assert unknown.status_code == 400 and "favouriteColour" in unknown.json()["error"]["message"]


def test_it_counts_only_on_the_first_page_and_names_the_default_context(raw_graph: httpx.Client) -> None:
    first = raw_graph.get(
        "/users", params={"$count": "true", "$top": "5"}, headers={"ConsistencyLevel": "eventual"}
    ).json()
    assert first["@odata.count"] == 12
    assert first["@odata.context"] == "https://graph.microsoft.com/v1.0/$metadata#users"
    second = raw_graph.get(first["@odata.nextLink"], headers={"ConsistencyLevel": "eventual"}).json()
    assert "@odata.count" not in second and len(second["value"]) == 5
    selected = raw_graph.get("/users", params={"$select": "id,mail"}).json()
    assert selected["@odata.context"] == "https://graph.microsoft.com/v1.0/$metadata#users(id,mail)"


def test_it_mixes_integer_and_fractional_retry_after_by_default(
    raw_graph: httpx.Client, control: MicrosoftSimControl
) -> None:
    control.add_fault("users.list", 429, retry_after=1.25, count=4)
    values = [raw_graph.get("/users").headers["Retry-After"] for _ in range(4)]
    assert values == ["2", "1.250", "2", "1.250"]


def test_the_connector_waits_an_integer_retry_after_and_treats_501_as_permanent(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, clock: FakeClock
) -> None:
    # A throttled item is retried after its Retry-After (2 s here, integer form first), then succeeds.
    client = make_client(clock=clock, sleep=lambda s: setattr(clock, "now", clock.now + s))
    control.add_fault("users.list", 429, retry_after=1.5)
    found = client.find_users_by_email(["user1@contoso.example"])
    assert [u.id for u in found["user1@contoso.example"]] == [stable_id("contoso", "user", 1)]
    with pytest.raises(GraphBadRequest) as caught:
        client._send("GET", f"{client._graph}/users?$select=id,birthday")  # noqa: SLF001 - the seam itself
    assert caught.value.status == 501 and caught.value.permanent


@pytest.mark.parametrize("outer", [200, 424, 429])
def test_the_connector_retries_a_throttled_batch_item_under_each_outer_status(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, clock: FakeClock, outer: int
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    client = make_client(clock=clock, sleep=sleep)
    control.configure(batchThrottleStatus=outer, retryAfterFormat="fractional")
    control.add_fault("users.list", 429, retry_after=0.75)
    emails = [f"user{i}@contoso.example" for i in range(12)]
    found = client.find_users_by_email(emails)
    assert all(len(found[e]) == 1 for e in emails)
    assert waits == [pytest.approx(0.75)]
    batches = [e["status"] for e in control.requests(route="$batch")["entries"]]
    assert batches == [outer, 200]
