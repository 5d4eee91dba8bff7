"""`StarfaceBridgeClient`: the bridge module's XML-RPC entry points (tier 2; contract v1).

Requests are marshalled with the standard library (`xmlrpc.client.dumps/loads`) and sent through an httpx
transport (connectors/http_clients.py: send) to `{pbx}/xml-rpc?de.vertico.starface.auth={uci_token}`.
The UCI token is a password equivalent: it never appears in a message, and `_redact` keeps it out of
httpx's request log line wherever an httpx client prints one.
"""

from __future__ import annotations

import logging
import ssl
import time
import xmlrpc.client
from collections.abc import Iterable
from typing import Any
from xml.parsers.expat import ExpatError

import httpx

from connectors import egress
from connectors.http_clients import DEFAULT_CONNECTIONS, DEFAULT_HEADERS, send, timeouts, transports_for
from connectors.starface import _redact
from connectors.starface._auth import uci_token
from connectors.starface._errors import (
    BridgeError,
    BridgeNotInstalled,
    BridgePbxError,
    BridgeSecretRejected,
    BridgeUnknownAccount,
    StarfaceLoginFailed,
    StarfaceProtocolError,
    StarfaceUnavailable,
    address_refused,
)
from connectors.starface._models import (
    BridgeChatStatus,
    BridgeInfo,
    BridgeTestSend,
    BridgeUserState,
    ChatPresence,
    TelephonyState,
)
from connectors.tls import tls_context
from connectors.trace import trace_exchange

logger = logging.getLogger(__name__)

CONTRACT_VERSION = "1"
#: Versions the service talks to: 1.1 adds `sendTestEvent` and the PBX clock in `ping` (both optional).
SUPPORTED_VERSIONS = ("1", "1.1")
_redact.install()


class StarfaceBridgeClient:
    def __init__(
        self,
        base_url: str,
        login_id: str,
        password: str,
        instance: str = "TeamsConnectBridge",
        secret: str = "",
        *,
        verify: bool | str | ssl.SSLContext = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        if not secret:
            raise ValueError("a bridge secret is required (the one configured in the module instance)")
        self._base_url = base_url.rstrip("/")
        self._login_id = login_id
        self._instance = instance
        self._secret = secret
        self._timeout = timeout
        tls = tls_context(verify)
        auth = {"de.vertico.starface.auth": uci_token(login_id, password)}
        # ``connections``: requests this client may send at once (the PBX gate's limit).
        self._http = transports_for(tls, connections, transport)
        self._url = httpx.URL(self._base_url + "/xml-rpc", params=auth)
        self._headers = {**DEFAULT_HEADERS, "Content-Type": "text/xml"}
        self._timeouts = timeouts(timeout)
        self.requests_made = 0

    def __repr__(self) -> str:
        return (
            f"StarfaceBridgeClient(base_url={self._base_url!r}, login_id={self._login_id!r}, "
            f"instance={self._instance!r})"
        )

    def __enter__(self) -> StarfaceBridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- entry points ---

    def ping(self) -> BridgeInfo:
        """Proves the module instance exists, the secret matches and it speaks contract version 1 or 1.1."""
        sent_at = time.time()
        result = self._call("ping", {})
        received_at = time.time()
        version, pbx_version = result.get("version"), result.get("pbxVersion", "")
        if version not in SUPPORTED_VERSIONS:
            raise StarfaceProtocolError(
                f"the bridge '{self._instance}' speaks contract version {version!r}, the service needs "
                f"one of {', '.join(SUPPORTED_VERSIONS)}; update the bridge module as "
                "docs/starface-bridge.md describes"
            )
        pbx_time = result.get("time")
        pbx_time_ms = None
        if isinstance(pbx_time, str) and pbx_time.isascii() and pbx_time.isdigit():
            pbx_time_ms = int(pbx_time)  # XML-RPC i4 cannot hold epoch milliseconds: 1.1 sends a string
        return BridgeInfo(version=str(version), pbx_version=str(pbx_version), pbx_time_ms=pbx_time_ms,
                          sent_at=sent_at, received_at=received_at)

    def send_test_event(self, nonce: str) -> BridgeTestSend:
        """Contract 1.1: asks the bridge to POST one signed event of type "test" carrying `nonce` to its
        configured webhook URL, and returns what the bridge says our service answered."""
        result = self._call("sendTestEvent", {"nonce": nonce})
        try:
            return BridgeTestSend(
                sent=bool(result["sent"]),
                status=int(result.get("status", 0)),
                answer=str(result.get("answer", ""))[:300],
                webhook_url=str(result.get("webhookUrl", "")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise self._bad_answer("sendTestEvent", f"unexpected result {sorted(result)}") from exc

    def get_states(self, accounts: Iterable[int] = ()) -> list[BridgeUserState]:
        """States of the given accounts, or of all users when `accounts` is empty."""
        result = self._call("getStates", {"accounts": [int(a) for a in accounts]})
        states = result.get("states")
        if not isinstance(states, list):
            raise self._bad_answer("getStates", "no 'states' array")
        return [self._user_state(s) for s in states]

    def set_chat_status(
        self, account: int, presence: ChatPresence | str | None, message: str
    ) -> BridgeChatStatus:
        """Sets the chat presence (None or "" keeps it) and the chat text ("" clears it)."""
        presence_value = ChatPresence(presence).value if presence else ""
        result = self._call(
            "setChatStatus", {"account": int(account), "presence": presence_value, "message": message}
        )
        try:
            return BridgeChatStatus(
                int(result["account"]),
                ChatPresence(result["chatPresence"]),
                str(result["chatPresenceMessage"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise self._bad_answer("setChatStatus", f"unexpected result {sorted(result)}") from exc

    def set_telephony_status(self, account: int, state: TelephonyState | str) -> TelephonyState:
        """Shows the user as on the phone (ACTIVE) or not (AVAILABLE) in the STARFACE app."""
        wanted = TelephonyState(state)
        if wanted not in (TelephonyState.ACTIVE, TelephonyState.AVAILABLE):
            raise ValueError("the bridge sets only ACTIVE or AVAILABLE")
        result = self._call("setTelephonyStatus", {"account": int(account), "state": wanted.value})
        try:
            return TelephonyState(result["telephonyState"])
        except (KeyError, ValueError) as exc:
            raise self._bad_answer("setTelephonyStatus", "no valid telephonyState") from exc

    # --- internals ---

    def _user_state(self, raw: Any) -> BridgeUserState:
        try:
            return BridgeUserState(
                account=int(raw["account"]),
                login=str(raw["login"]),
                dnd=bool(raw["dnd"]),
                chat_presence=ChatPresence(raw["chatPresence"]),
                chat_presence_message=str(raw.get("chatPresenceMessage", "")),
                telephony_state=TelephonyState(raw["telephonyState"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise self._bad_answer(
                "getStates", "a state entry lacks a field or has an unknown enum value"
            ) from exc

    def _bad_answer(self, entry_point: str, what: str) -> StarfaceProtocolError:
        return StarfaceProtocolError(
            f"the bridge's answer to {entry_point} does not match contract v1: {what}"
        )

    def _call(self, entry_point: str, args: dict[str, Any]) -> dict[str, Any]:
        """One XML-RPC call: the seam where httpx and xmlrpc errors become connector errors."""
        method = f"{self._instance}.{entry_point}"
        body = xmlrpc.client.dumps(({**args, "secret": self._secret},), methodname=method, allow_none=False)
        self.requests_made += 1
        started = time.perf_counter()
        try:
            request = httpx.Request("POST", self._url, content=body.encode("utf-8"), headers=self._headers,
                                    extensions={"timeout": self._timeouts})
            response = send(self._http.client(), request)
        except egress.InternalAddressRefused as exc:
            raise address_refused(self._base_url, exc) from None
        except httpx.TimeoutException as exc:
            raise StarfaceUnavailable(
                f"STARFACE at {self._base_url} did not answer the bridge call {entry_point} within "
                f"{self._timeout} s; check that the PBX is up"
            ) from exc
        except httpx.HTTPError as exc:
            raise StarfaceUnavailable(
                f"cannot reach STARFACE at {self._base_url} for the bridge ({type(exc).__name__}); check the "
                "PBX address, its certificate and the firewall (service -> PBX HTTPS)"
            ) from exc
        trace_exchange(logger, "bridge", entry_point, response.status_code, started,
                       len(response.request.content), len(response.content))
        if response.status_code >= 500:
            raise StarfaceUnavailable(
                f"STARFACE answered HTTP {response.status_code} to the bridge call "
                f"{entry_point}; retrying later"
            )
        if response.status_code == 404:
            raise BridgeNotInstalled(
                f"STARFACE at {self._base_url} has no /xml-rpc endpoint (HTTP 404); the "
                "bridge needs a PBX with the module framework (STARFACE 6.4.2 or later)"
            )
        if response.status_code != 200:
            raise StarfaceProtocolError(
                f"STARFACE answered HTTP {response.status_code} to the bridge call {entry_point}"
            )
        try:
            (result,), _ = xmlrpc.client.loads(response.content)
        except xmlrpc.client.Fault as fault:
            raise self._fault_error(entry_point, fault) from fault
        except (ExpatError, ValueError, TypeError) as exc:
            raise self._bad_answer(entry_point, "not an XML-RPC methodResponse with one value") from exc
        if not isinstance(result, dict):
            raise self._bad_answer(entry_point, "the result is not a struct")
        return result

    def _fault_error(self, entry_point: str, fault: xmlrpc.client.Fault) -> BridgeError | StarfaceLoginFailed:
        code, text = fault.faultCode, str(fault.faultString)
        if code == 401:
            return BridgeSecretRejected(
                f"the bridge '{self._instance}' rejected the bridge secret: enter the secret configured "
                "in the module instance in the tenant's settings",
                code,
            )
        if code == 404:
            return BridgeUnknownAccount(
                f"the bridge does not know the account of {entry_point}; the user may "
                "have been deleted in STARFACE (directory sync will drop it)",
                code,
            )
        if code == 500:
            return BridgePbxError(
                f"the bridge hit a PBX error in {entry_point}: {text[:200]}; retrying later", code
            )
        if "no such handler" in text.lower() or "nosuchhandler" in text.lower():
            return BridgeNotInstalled(
                f"STARFACE has no module instance '{self._instance}' with entry point {entry_point}: install "
                "the bridge module (docs/starface-bridge.md) or correct the instance name; until then the "
                "tenant runs REST only (DND, no chat text, telephony status or call events)",
                code,
            )
        if "illegalaccess" in text.lower() or "authenticat" in text.lower():
            return StarfaceLoginFailed(
                f"STARFACE rejected the UCI token of service account '{self._login_id}' for the bridge: "
                "check the login id and password in the tenant's STARFACE settings"
            )
        return BridgeError(f"the bridge answered {entry_point} with fault {code}: {text[:200]}", code)
