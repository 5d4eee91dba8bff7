"""Our app's presence session: set, keep alive, fade, expire, clear; aggregation with Teams and the user."""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.graph import GraphClient
from simulators.microsoft import MicrosoftSimControl, MicrosoftSimulator

TEN_MIN = timedelta(minutes=10)


def _pair(graph: GraphClient, user: str) -> tuple[str, str]:
    presence = graph.get_presence(user)
    return presence.availability, presence.activity


def test_it_sets_and_clears_our_session(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    graph.set_presence(user, "Busy", "InACall", TEN_MIN)
    assert _pair(graph, user) == ("Busy", "InACall")
    assert list(control.presence(user)["sessions"]["apps"]) == [tenant["apps"][0]["clientId"]]
    assert graph.clear_presence(user) is True
    assert _pair(graph, user) == ("Offline", "Offline")
    assert graph.clear_presence(user) is False  # 404: no session any more, which is success


def test_it_lets_the_strongest_session_win(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    control.teams(user, "sign_in")
    graph.set_presence(user, "Busy", "InACall", TEN_MIN)
    assert _pair(graph, user) == ("Busy", "InACall")
    control.teams(user, "presenting_start")
    assert _pair(graph, user) == ("DoNotDisturb", "Presenting")


def test_it_lets_the_user_preferred_state_beat_our_session(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    control.teams(user, "sign_in")
    control.teams(user, "status_set", availability="Available", activity="Available")
    graph.set_presence(user, "DoNotDisturb", "Presenting", TEN_MIN)
    assert _pair(graph, user) == ("Available", "Available")
    control.teams(user, "status_clear")
    assert _pair(graph, user) == ("DoNotDisturb", "Presenting")


def test_it_fades_an_available_session_and_expires_sessions(
    graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user, other = tenant["users"][0]["id"], tenant["users"][1]["id"]
    graph.set_presence(user, "Available", "Available", timedelta(hours=1))
    graph.set_presence(other, "Busy", "InACall", timedelta(minutes=5))
    control.advance_clock(301)
    assert _pair(graph, user) == ("Available", "AvailableInactive")
    assert _pair(graph, other) == ("Offline", "Offline")
    graph.keep_alive(user, "Available", "Available", timedelta(hours=1))
    assert _pair(graph, user) == ("Available", "Available")
    control.advance_clock(601)
    assert _pair(graph, user) == ("Away", "Away")
    assert graph.clear_presence(other) is False


def test_it_validates_pairs_and_durations_before_sending(graph: GraphClient, tenant: dict[str, Any]) -> None:
    user = tenant["users"][0]["id"]
    with pytest.raises(ValueError):
        graph.set_presence(user, "Busy", "Busy", TEN_MIN)
    with pytest.raises(ValueError):
        graph.set_presence(user, "Busy", "InACall", timedelta(hours=5))
    assert graph.requests_made == 0


def test_it_rejects_what_graph_rejects(
    sim: MicrosoftSimulator, graph: GraphClient, tenant: dict[str, Any]
) -> None:
    user, app = tenant["users"][0]["id"], tenant["apps"][0]["clientId"]
    graph.check_access()
    url = f"{sim.base_url}/v1.0/users/{user}/presence/setPresence"
    good = {"sessionId": app, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT5M"}
    with httpx.Client(
        verify=ssl.create_default_context(cafile=sim.ca_path),
        headers={"Authorization": f"Bearer {graph._tokens.token()}"},
    ) as http:
        statuses = [
            http.post(url, json=body).status_code
            for body in (
                {**good, "sessionId": "00000000-0000-0000-0000-000000000000"},
                {**good, "activity": "InAMeeting"},
                {**good, "expirationDuration": "PT4M"},
                {**good, "expirationDuration": "PT4H1M"},
                good,
            )
        ]
    assert statuses == [400, 400, 400, 400, 200]


def test_it_serves_the_user_level_presence_routes(
    sim: MicrosoftSimulator, graph: GraphClient, control: MicrosoftSimControl, tenant: dict[str, Any]
) -> None:
    user = tenant["users"][0]["id"]
    control.teams(user, "sign_in")
    graph.check_access()
    base = f"{sim.base_url}/v1.0/users/{user}/presence"
    with httpx.Client(
        verify=ssl.create_default_context(cafile=sim.ca_path),
        headers={"Authorization": f"Bearer {graph._tokens.token()}"},
    ) as http:
        assert (
            http.post(
                f"{base}/setUserPreferredPresence",
                json={"availability": "DoNotDisturb", "activity": "DoNotDisturb"},
            ).status_code
            == 200
        )
        assert (
            http.post(
                f"{base}/setStatusMessage",
                json={"statusMessage": {"message": {"content": "In the lab", "contentType": "text"}}},
            ).status_code
            == 200
        )
        preferred = graph.get_presence(user)
        assert http.post(f"{base}/clearUserPreferredPresence", json={}).status_code == 200
        control.advance_clock(7200)
        expired = http.get(base)
    assert (preferred.availability, preferred.activity, preferred.status_message) == (
        "DoNotDisturb",
        "DoNotDisturb",
        "In the lab",
    )
    assert graph.get_presence(user).availability == "Available"
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert expired.headers["WWW-Authenticate"].startswith('Bearer realm=""')
