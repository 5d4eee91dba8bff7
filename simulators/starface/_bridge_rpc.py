"""The simulated /xml-rpc endpoint: UCI token auth and the bridge module's entry points (contract v1).

A seed without `bridge` is a PBX without the module: then `{instance}.{entrypoint}` is an unknown handler,
answered with the fault an Apache XML-RPC server gives for an unknown method [I: code 0, "No such handler"].
A bad or missing UCI token is a fault as well (reference §3 UCI, `UciIllegalAccessException` [I code]).
Faults travel in HTTP 200 `methodResponse` bodies, as XML-RPC prescribes.
"""

from __future__ import annotations

import uuid
import xmlrpc.client
from collections.abc import Callable
from typing import Any

from simulators.starface._http import Request, Response
from simulators.starface._pbx import Pbx, UserRec
from simulators.starface.seed import CHAT_PRESENCES

BRIDGE_CONTRACT_VERSION = "1.1"  # the default; a seed or /__sim/bridge can make the module speak "1"
FAULT_UNKNOWN_METHOD = 0
FAULT_ILLEGAL_ACCESS = 0
FAULT_BAD_INPUT = 400  # not in the contract's list; see docs/starface-bridge.md "Bad input"
FAULT_SECRET = 401
FAULT_UNKNOWN_ACCOUNT = 404
FAULT_PBX_ERROR = 500


class _Fault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _xml(payload: bytes) -> Response:
    return Response(200, payload, "text/xml; charset=UTF-8")


def fault_response(code: int, message: str) -> Response:
    return _xml(xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True).encode("utf-8"))


def handle(pbx: Pbx, req: Request) -> Response:
    if req.method != "POST":
        return Response(405, b"", headers={"Allow": "POST"})
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type not in ("text/xml", "application/xml"):  # reference §1.2
        return Response(415, b"", headers={"Accept": "text/xml"})
    try:
        params, method = xmlrpc.client.loads(req.body)
    except Exception:  # expat and xmlrpc raise several unrelated types for a malformed body
        method = None
    if method is None:  # malformed, or a well-formed document that is no methodCall (e.g. a methodResponse)
        return fault_response(
            FAULT_PBX_ERROR, "org.apache.xmlrpc.XmlRpcException: Failed to parse XML-RPC request"
        )
    caller = pbx.user_for_uci_token(req.query.get("de.vertico.starface.auth"))
    if caller is None:
        return fault_response(
            FAULT_ILLEGAL_ACCESS,
            "de.vertico.starface.integration.uci.api.UciIllegalAccessException: not authenticated",
        )
    bridge = pbx.bridge
    prefix = f"{bridge.instance}." if bridge else None
    entry = _ENTRY_POINTS.get(method.removeprefix(prefix)) if prefix and method.startswith(prefix) else None
    if entry is _send_test_event and bridge is not None and bridge.contract_version == "1":
        entry = None  # a v1.0 module has no sendTestEvent
    if bridge is None or entry is None:
        return fault_response(FAULT_UNKNOWN_METHOD, f"No such handler: {method}")
    try:
        if len(params) != 1 or not isinstance(params[0], dict):
            raise _Fault(FAULT_BAD_INPUT, "entry points take exactly one struct parameter")
        args = params[0]
        if not isinstance(args.get("secret"), str) or args["secret"] != bridge.secret:
            raise _Fault(FAULT_SECRET, "bridge secret rejected")
        result = entry(pbx, args)
    except _Fault as fault:
        return fault_response(fault.code, fault.message)
    return _xml(xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False).encode("utf-8"))


def _account(pbx: Pbx, value: Any) -> UserRec:
    if type(value) is not int:
        raise _Fault(FAULT_BAD_INPUT, "account must be an int")
    user = pbx.users.get(value)
    if user is None:
        raise _Fault(FAULT_UNKNOWN_ACCOUNT, f"unknown account {value}")
    return user


def _string(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise _Fault(FAULT_BAD_INPUT, f"{name} must be a string")
    return value


def _state(user: UserRec) -> dict[str, Any]:
    return {
        "account": user.id,
        "login": user.login,
        "dnd": user.dnd,
        "chatPresence": user.chat_presence,
        "chatPresenceMessage": user.chat_message,
        "telephonyState": user.telephony,
    }


def _get_states(pbx: Pbx, args: dict[str, Any]) -> dict[str, Any]:
    accounts = args.get("accounts", [])
    if not isinstance(accounts, list):
        raise _Fault(FAULT_BAD_INPUT, "accounts must be an array of int")
    with pbx.lock:
        users = (
            [_account(pbx, a) for a in accounts]
            if accounts
            else sorted(pbx.users.values(), key=lambda u: u.id)
        )
        return {"states": [_state(u) for u in users]}


def _set_chat_status(pbx: Pbx, args: dict[str, Any]) -> dict[str, Any]:
    presence, message = _string(args, "presence"), _string(args, "message")
    if presence and presence not in CHAT_PRESENCES:
        raise _Fault(FAULT_BAD_INPUT, f"presence must be one of {', '.join(CHAT_PRESENCES)} or empty")
    with pbx.lock:
        user = _account(pbx, args.get("account"))
        pbx.set_chat(user, presence or None, message, origin="integration")
        return {
            "account": user.id,
            "chatPresence": user.chat_presence,
            "chatPresenceMessage": user.chat_message,
        }


def _set_telephony_status(pbx: Pbx, args: dict[str, Any]) -> dict[str, Any]:
    state = _string(args, "state")
    if state not in ("ACTIVE", "AVAILABLE"):
        raise _Fault(FAULT_BAD_INPUT, "state must be ACTIVE or AVAILABLE")
    with pbx.lock:
        user = _account(pbx, args.get("account"))
        pbx.set_telephony(user, state, origin="integration")
        return {"account": user.id, "telephonyState": user.telephony}


def _ping(pbx: Pbx, args: dict[str, Any]) -> dict[str, Any]:
    assert pbx.bridge is not None
    if pbx.bridge.contract_version == "1":
        return {"version": "1", "pbxVersion": pbx.bridge.pbx_version}
    # 1.1: the PBX clock as a decimal string (XML-RPC's i4 cannot hold epoch milliseconds)
    return {"version": pbx.bridge.contract_version, "pbxVersion": pbx.bridge.pbx_version,
            "time": str(pbx.now_ms())}


def _send_test_event(pbx: Pbx, args: dict[str, Any]) -> dict[str, Any]:
    """Contract 1.1: POST one signed event of type "test" to the webhook now (no retry) and report the
    service's answer."""
    nonce = _string(args, "nonce")
    if not nonce or len(nonce) > 100:
        raise _Fault(FAULT_BAD_INPUT, "nonce must be a string of 1 to 100 characters")
    if pbx.send_test is None:
        raise _Fault(FAULT_PBX_ERROR, "the module has no webhook sender")
    event = {"eventId": str(uuid.uuid4()), "type": "test", "nonce": nonce, "occurredAt": pbx.now_ms(),
             "origin": "integration"}
    return pbx.send_test(event)


_ENTRY_POINTS: dict[str, Callable[[Pbx, dict[str, Any]], dict[str, Any]]] = {
    "getStates": _get_states,
    "setChatStatus": _set_chat_status,
    "setTelephonyStatus": _set_telephony_status,
    "ping": _ping,
    "sendTestEvent": _send_test_event,
}
