"""Log level TRACE (issue 11): one summary line per PBX request, and never a secret in it."""

from __future__ import annotations

import logging

import pytest

from connectors.starface import StarfaceBridgeClient, StarfaceRestClient
from connectors.starface._auth import uci_token
from connectors.trace import TRACE
from simulators.starface import StarfaceSimControl
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, ALICE, BRIDGE_SECRET


def _traced(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == TRACE]


def test_it_summarises_every_rest_request_without_the_token(
    rest: StarfaceRestClient, control: StarfaceSimControl, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(TRACE, logger="connectors"):
        rest.list_users()
        rest.set_dnd(ALICE, True)
    lines = _traced(caplog)
    assert [line.split(" in ")[0] for line in lines] == [
        "starface GET /rest/login -> 200",
        "starface POST /rest/login -> 200",
        "starface GET /rest/users -> 200",
        f"starface GET /rest/users/{ALICE}/phoneconfig -> 200",
        f"starface PUT /rest/users/{ALICE}/phoneconfig -> 204",
    ]
    assert all(" ms (" in line and "bytes out" in line for line in lines)
    token = {k.lower(): v for k, v in control.request_log()[-1]["headers"].items()}["authtoken"]
    assert not any(secret in line for line in lines for secret in (token, ADMIN_PASSWORD))


def test_it_summarises_bridge_calls_by_entry_point_without_the_secret(
    bridge: StarfaceBridgeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(TRACE, logger="connectors"):
        bridge.ping()
        bridge.get_states([ALICE])
    lines = _traced(caplog)
    assert [line.split(" in ")[0] for line in lines] == ["bridge ping -> 200", "bridge getStates -> 200"]
    uci = uci_token(ADMIN_LOGIN, ADMIN_PASSWORD).split(":")[1]
    assert not any(secret in line for line in lines for secret in (BRIDGE_SECRET, uci, ADMIN_PASSWORD))


def test_it_writes_nothing_at_debug(rest: StarfaceRestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="connectors"):
        rest.list_users()
    assert _traced(caplog) == []
