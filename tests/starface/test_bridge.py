"""The bridge module over XML-RPC: each entry point, each fault, and a PBX without the module."""

from __future__ import annotations

import logging
import xmlrpc.client

import httpx
import pytest

from connectors.starface import (
    BridgeNotInstalled,
    BridgePbxError,
    BridgeSecretRejected,
    BridgeUnknownAccount,
    ChatPresence,
    StarfaceBridgeClient,
    StarfaceLoginFailed,
    TelephonyState,
)
from simulators.starface import StarfaceSimControl, StarfaceSimulator, uci_token
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, ALICE, BOB, BRIDGE_SECRET


def test_it_pings_the_bridge(bridge: StarfaceBridgeClient) -> None:
    info = bridge.ping()
    assert (info.version, info.pbx_version) == ("1.1", "9.0.0.9")
    assert info.pbx_time_ms is not None  # contract 1.1: the PBX clock


def test_it_reads_the_states_of_all_or_some_users(
    bridge: StarfaceBridgeClient, control: StarfaceSimControl
) -> None:
    control.toggle_dnd_by_hand("1101", True)
    assert [s.account for s in bridge.get_states()] == [1, ALICE, BOB, 102, 103]
    (bob,) = bridge.get_states([BOB])
    assert (bob.login, bob.dnd, bob.chat_presence, bob.telephony_state) == (
        "1101",
        True,
        ChatPresence.AVAILABLE,
        TelephonyState.AVAILABLE,
    )


def test_it_sets_and_keeps_and_clears_the_chat_status(
    bridge: StarfaceBridgeClient, control: StarfaceSimControl
) -> None:
    set_ = bridge.set_chat_status(BOB, ChatPresence.DO_NOT_DISTURB, "On a call in MS Teams")
    assert (set_.chat_presence, set_.chat_presence_message) == (
        ChatPresence.DO_NOT_DISTURB,
        "On a call in MS Teams",
    )
    kept = bridge.set_chat_status(BOB, None, "")  # "" keeps the presence, clears the text
    assert (kept.chat_presence, kept.chat_presence_message) == (ChatPresence.DO_NOT_DISTURB, "")
    state = control.user_state("1101")
    assert (state["chatPresence"], state["chatPresenceMessage"]) == ("DO_NOT_DISTURB", "")


def test_it_sets_the_telephony_status(bridge: StarfaceBridgeClient, control: StarfaceSimControl) -> None:
    assert bridge.set_telephony_status(BOB, TelephonyState.ACTIVE) is TelephonyState.ACTIVE
    assert control.user_state("1101")["telephonyState"] == "ACTIVE"
    assert bridge.set_telephony_status(BOB, "AVAILABLE") is TelephonyState.AVAILABLE
    with pytest.raises(ValueError):
        bridge.set_telephony_status(BOB, TelephonyState.RINGING)


def test_it_reports_a_rejected_secret(sim: StarfaceSimulator) -> None:
    with (
        StarfaceBridgeClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, secret="not-the-secret") as client,
        pytest.raises(BridgeSecretRejected) as caught,
    ):
        client.ping()
    assert caught.value.permanent and caught.value.fault_code == 401
    assert "not-the-secret" not in str(caught.value)


def test_it_reports_an_unknown_account(bridge: StarfaceBridgeClient) -> None:
    with pytest.raises(BridgeUnknownAccount) as caught:
        bridge.set_chat_status(999, ChatPresence.AWAY, "")
    assert caught.value.fault_code == 404
    with pytest.raises(BridgeUnknownAccount):
        bridge.get_states([ALICE, 999])


def test_it_reports_a_pbx_error_as_retryable(
    bridge: StarfaceBridgeClient, control: StarfaceSimControl
) -> None:
    control.inject_fault("/xml-rpc", xmlrpc_fault=500)
    with pytest.raises(BridgePbxError) as caught:
        bridge.get_states()
    assert not caught.value.permanent
    assert len(bridge.get_states()) == 5


def test_it_detects_a_pbx_without_the_bridge(seed: dict) -> None:
    del seed["bridge"]
    with (
        StarfaceSimulator(seed) as sim,
        StarfaceBridgeClient(sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, secret=BRIDGE_SECRET) as client,
        pytest.raises(BridgeNotInstalled) as caught,
    ):
        client.ping()
    assert caught.value.permanent
    assert "REST only" in caught.value.message and "TeamsConnectBridge" in caught.value.message


def test_it_detects_a_wrong_instance_name(sim: StarfaceSimulator) -> None:
    with (
        StarfaceBridgeClient(
            sim.base_url, ADMIN_LOGIN, ADMIN_PASSWORD, instance="OtherBridge", secret=BRIDGE_SECRET
        ) as client,
        pytest.raises(BridgeNotInstalled),
    ):
        client.ping()


def test_it_reports_a_rejected_uci_token(sim: StarfaceSimulator) -> None:
    with (
        StarfaceBridgeClient(sim.base_url, ADMIN_LOGIN, "wrong-pass", secret=BRIDGE_SECRET) as client,
        pytest.raises(StarfaceLoginFailed) as caught,
    ):
        client.ping()
    assert "wrong-pass" not in str(caught.value)


def test_it_answers_a_plain_xmlrpc_client(sim: StarfaceSimulator) -> None:
    proxy = xmlrpc.client.ServerProxy(
        f"{sim.base_url}/xml-rpc?de.vertico.starface.auth={uci_token('1100', 'pw-1100')}"
    )
    states = proxy.TeamsConnectBridge.getStates({"secret": BRIDGE_SECRET, "accounts": [BOB]})
    assert states["states"][0]["login"] == "1101"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        proxy.TeamsConnectBridge.setTelephonyStatus(
            {"secret": BRIDGE_SECRET, "account": BOB, "state": "RINGING"}
        )
    assert caught.value.faultCode == 400


def test_it_keeps_the_uci_token_out_of_the_logs(
    bridge: StarfaceBridgeClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = uci_token(ADMIN_LOGIN, ADMIN_PASSWORD).split(":")[1]
    with caplog.at_level(logging.DEBUG):
        bridge.ping()
    assert caplog.records  # httpcore's and our own exchange lines, at DEBUG
    assert not any(token in record.getMessage() for record in caplog.records)
    # httpx.Client's request line (INFO, the URL with the token) is redacted wherever it is printed.
    url = f"https://pbx/xml-rpc?de.vertico.starface.auth={token}"
    line = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
                             ("POST", url, "HTTP/1.1", 200, "OK"), None)
    for log_filter in logging.getLogger("httpx").filters:
        log_filter.filter(line)
    assert token not in line.getMessage() and "[redacted]" in line.getMessage()


def test_it_rejects_a_non_xml_content_type(sim: StarfaceSimulator) -> None:
    answer = httpx.post(
        f"{sim.base_url}/xml-rpc", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 415


def test_it_answers_a_body_that_is_no_method_call_with_a_fault(sim: StarfaceSimulator) -> None:
    not_a_call = xmlrpc.client.dumps(({"secret": BRIDGE_SECRET},), methodresponse=True).encode()
    answer = httpx.post(
        f"{sim.base_url}/xml-rpc",
        params={"de.vertico.starface.auth": uci_token(ADMIN_LOGIN, ADMIN_PASSWORD)},
        content=not_a_call,
        headers={"Content-Type": "text/xml"},
    )
    assert answer.status_code == 200
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(answer.content)
    assert "Failed to parse" in caught.value.faultString
