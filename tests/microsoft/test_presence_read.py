"""Reading presence through the connector: chunking, parsing, Teams-driven states, ordering, isolation."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.graph import GraphAuthError, GraphClient, GraphNotFound, Presence, compare_sequence
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator, make_seed


@pytest.fixture
def seed() -> dict[str, Any]:
    return make_seed(n_users=1500, tenants=("contoso", "fabrikam"))


def test_it_reads_1500_users_in_exactly_3_calls(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    ids = [u["id"] for u in tenant["users"]]
    presences = graph.get_presences(ids)
    assert sorted(p.user_id for p in presences) == sorted(ids)
    assert control.count("getPresencesByUserId") == 3
    assert graph.requests_made == 3


def test_it_reports_teams_client_activity(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    observed = []
    for action in ("sign_in", "call_start", "calendar_start", "call_end", "calendar_end", "sign_out"):
        control.teams(user, action)
        p = graph.get_presences([user])[0]
        observed.append((p.availability, p.activity))
    assert observed == [
        ("Available", "Available"),
        ("Busy", "InACall"),
        ("Busy", "InAMeeting"),
        ("Busy", "InAMeeting"),
        ("Available", "Available"),
        ("Offline", "Offline"),
    ]


def test_it_reports_out_of_office_and_status_message(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    control.teams(user, "sign_in")
    control.teams(user, "oof_on", message="On holiday")
    presence = graph.get_presence(user)
    assert (presence.availability, presence.activity, presence.out_of_office) == (
        "Available",
        "OutOfOffice",
        True,
    )
    assert presence.status_message is None


def test_it_orders_observations_by_sequence_number(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    control.teams(user, "sign_in")
    before = graph.get_presence(user)
    unchanged = graph.get_presence(user)
    control.teams(user, "call_start")
    after = graph.get_presence(user)
    assert after.is_newer_than(before) is True and before.is_newer_than(after) is False
    assert compare_sequence(before.sequence_number, unchanged.sequence_number) == 0
    assert Presence(user, "Busy", "InACall").is_newer_than(before) is None


def test_it_parses_values_case_insensitively(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    control.teams(user, "sign_in")
    control.teams(user, "presenting_start")
    control.configure(camelCasePresence=True)
    presence = graph.get_presences([user])[0]
    assert (presence.availability, presence.activity) == ("DoNotDisturb", "Presenting")


def test_it_maps_unknown_values_and_missing_fields_safely() -> None:
    parsed = Presence.from_graph({"id": "ABC", "availability": "Focusing-ish", "activity": "inacall"})
    assert parsed == Presence("abc", "PresenceUnknown", "InACall", None, False, None)


def test_it_keeps_tenants_apart(
    make_client: Callable[..., GraphClient], tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    client = make_client(tenant)
    foreign = [u["id"] for u in other_tenant["users"][:3]]
    assert client.get_presences(foreign) == []
    with pytest.raises(GraphNotFound):
        client.get_presence(foreign[0])
    assert len(make_client(other_tenant).get_presences(foreign)) == 3


def test_it_refuses_more_than_650_ids_and_non_guids(
    sim: MicrosoftSimulator, graph: GraphClient, tenant: dict[str, Any]
) -> None:
    graph.check_access()
    token = graph._tokens.token()
    ids = [u["id"] for u in tenant["users"][:651]]
    with httpx.Client(
        verify=ssl.create_default_context(cafile=sim.ca_path), headers={"Authorization": f"Bearer {token}"}
    ) as http:
        url = f"{sim.base_url}/v1.0/communications/getPresencesByUserId"
        assert http.post(url, json={"ids": ids}).status_code == 400
        assert http.post(url, json={"ids": []}).status_code == 400
        assert http.post(url, json={"ids": ["user0@contoso.example"]}).status_code == 400
        assert http.post(url, json={"ids": ids[:650]}).status_code == 200
        unauthenticated = http.post(url, json={"ids": ids[:1]}, headers={"Authorization": ""})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_it_reports_a_missing_presence_permission(
    make_client: Callable[..., GraphClient], control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    control.set_roles(tenant["id"], tenant["apps"][0]["clientId"], ["User.Read.All"])
    client = make_client()
    with pytest.raises(GraphAuthError) as caught:
        client.get_presences([tenant["users"][0]["id"]])
    with pytest.raises(GraphAuthError) as checked:
        client.check_access()
    assert caught.value.aadsts_code is None and "Presence.ReadWrite.All" in caught.value.fix
    assert "missing: Presence.ReadWrite.All" in str(checked.value)
