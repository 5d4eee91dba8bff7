"""The test-only control API under /__sim/ (reference §3 "Test-control API"); never part of a real PBX.

Simulated people act here (a user rings, answers, hangs up, toggles DND by hand, the STARFACE app
overwrites the chat status), and tests arrange faults, expire tokens, read the request log and the
webhook delivery log, and point the bridge at the web app's webhook once its port is known.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulators.starface._http import Request, Response, error_response, json_response
from simulators.starface.seed import CHAT_PRESENCES, TELEPHONY_STATES

if TYPE_CHECKING:
    from simulators.starface.simulator import StarfaceSimulator


@dataclass
class Fault:
    """Answers requests to `path` (exact, or a prefix when it ends in `*`) with a status and/or a delay."""

    path: str
    method: str | None
    status: int | None
    delay_s: float
    remaining: int  # < 0: forever
    xmlrpc_fault: int | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return path.startswith(self.path[:-1]) if self.path.endswith("*") else path == self.path


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first matching fault, counting one use of it."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None


class RequestLog:
    """Every non-control request with its headers, query and body (bounded, newest kept)."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def add(self, req: Request) -> dict[str, Any]:
        """Logs the request as received; the caller adds the answer with `answered`."""
        entry: dict[str, Any] = {
            "at": time.time(),  # when the simulator received it (chaos suite: the order of writes)
            "method": req.method,
            "path": req.path,
            "query": req.query_string,
            "headers": dict(req.headers.items()),
            "body": req.body.decode("utf-8", errors="replace"),
        }
        with self._lock:
            self._entries.append(entry)
        return entry

    def answered(self, entry: dict[str, Any], status: int, body: bytes) -> None:
        """The answer's HTTP status, and for the bridge whether it was an XML-RPC fault: a write counts as
        made only when it was answered with success (the chaos suite counts writes this way)."""
        with self._lock:
            entry["status"] = status
            entry["fault"] = b"<fault>" in body

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._entries]  # copies: `answered` may still add to one

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RivalSyncs:
    """Another sync on the same PBX (STARFACE's own Microsoft Presence Sync, a second TeamsConnect): it
    writes DND and chat text through the module API, so its changes raise events with origin
    "integration", like ours. One flip per control call, or periodic flips in a thread until stopped."""

    def __init__(self, pbx: Any) -> None:
        self._pbx = pbx
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def flip(self, user: Any, dnd: bool | None, presence: str | None, message: str | None) -> None:
        if dnd is None and message is None:
            dnd = not user.dnd  # a bare flip toggles DND
        if dnd is not None:
            self._pbx.set_dnd(user, dnd, origin="integration")
        if message is not None:
            self._pbx.set_chat(user, presence, message, origin="integration")

    def start(self, user: Any, every_s: float, count: int, message: str | None) -> None:
        def run() -> None:
            done = 0
            while (count < 0 or done < count) and not self._stop.wait(every_s):  # the rival's own period
                texts = (message, "") if message is not None else (None, None)
                self.flip(user, None if message is not None else not user.dnd, None, texts[done % 2])
                done += 1

        thread = threading.Thread(target=run, name=f"rival-sync-{user.login}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._stop = threading.Event()


Handler = Callable[["StarfaceSimulator", Request, "re.Match[str]"], Response]
_ROUTES: dict[tuple[str, re.Pattern[str]], Handler] = {}


def _route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ROUTES[(method, re.compile(f"^/__sim{pattern}$"))] = handler
        return handler

    return register


def handle(sim: StarfaceSimulator, req: Request) -> Response:
    for (method, pattern), handler in _ROUTES.items():
        match = pattern.match(req.path)
        if match and method == req.method:
            try:
                return handler(sim, req, match)
            except (ValueError, KeyError, TypeError) as exc:
                return error_response(400, "BAD_REQUEST", f"control request not understood: {exc}")
    return error_response(404, "NOT_FOUND", f"no control resource {req.method} {req.path}")


def _body(req: Request) -> dict[str, Any]:
    body = req.json() if req.body else {}
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _user(sim: StarfaceSimulator, login: str) -> Any:
    user = sim.pbx.by_login.get(login)
    if user is None:
        raise KeyError(f"no user with login {login}")
    return user


@_route("GET", r"/users/([^/]+)")
def _get_user(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, sim.pbx.user_state(_user(sim, m.group(1))))


# A call as the PBX sees it: the user's telephony state moves RINGING -> ACTIVE -> AVAILABLE.
_CALL_STEPS = {
    "ring": ({"AVAILABLE"}, "RINGING"),
    "answer": ({"RINGING"}, "ACTIVE"),
    "end": ({"RINGING", "ACTIVE"}, "AVAILABLE"),
}


@_route("POST", r"/users/([^/]+)/call")
def _call(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    user = _user(sim, m.group(1))
    action = _body(req)["action"]
    if action not in _CALL_STEPS:
        raise ValueError(f"action must be one of {', '.join(_CALL_STEPS)}")
    allowed_from, target = _CALL_STEPS[action]
    with sim.pbx.lock:
        if user.telephony not in allowed_from:
            return error_response(
                409, "CONFLICT", f"cannot {action} while telephony state is {user.telephony}"
            )
        sim.pbx.set_telephony(user, target, origin="user")
        return json_response(200, sim.pbx.user_state(user))


@_route("POST", r"/users/([^/]+)/telephony")
def _telephony(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    user, state = _user(sim, m.group(1)), _body(req)["state"]
    if state not in TELEPHONY_STATES:
        raise ValueError(f"state must be one of {', '.join(TELEPHONY_STATES)}")
    sim.pbx.set_telephony(user, state, origin="user")
    return json_response(200, sim.pbx.user_state(user))


@_route("POST", r"/users/([^/]+)/dnd")
def _dnd(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    user, on = _user(sim, m.group(1)), _body(req)["dnd"]
    if not isinstance(on, bool):
        raise ValueError("dnd must be a boolean")
    sim.pbx.set_dnd(user, on, origin="user")
    return json_response(200, sim.pbx.user_state(user))


@_route("POST", r"/users/([^/]+)/chat")
def _chat(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    """The STARFACE app (UCC client) overwriting the chat status, as fluxpunkt reports it does (§1.4)."""
    body = _body(req)
    user, presence, message = _user(sim, m.group(1)), body.get("presence") or None, body.get("message", "")
    if presence is not None and presence not in CHAT_PRESENCES:
        raise ValueError(f"presence must be one of {', '.join(CHAT_PRESENCES)}")
    if not isinstance(message, str):
        raise ValueError("message must be a string")
    sim.pbx.set_chat(user, presence, message, origin="user")
    return json_response(200, sim.pbx.user_state(user))


@_route("POST", "/tokens/expire")
def _expire(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, {"expired": sim.pbx.expire_tokens(_body(req).get("login"))})


@_route("POST", "/faults")
def _add_fault(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    body = _body(req)
    fault = Fault(
        path=str(body["path"]),
        method=body.get("method"),
        status=body.get("status"),
        delay_s=float(body.get("delayMs", 0)) / 1000,
        remaining=int(body.get("count", 1)),
        xmlrpc_fault=body.get("xmlrpcFault"),
    )
    if fault.status is None and fault.xmlrpc_fault is None and fault.delay_s <= 0:
        raise ValueError("a fault needs status, xmlrpcFault or delayMs")
    sim.faults.add(fault)
    return json_response(201, {"path": fault.path, "remaining": fault.remaining})


@_route("DELETE", "/faults")
def _clear_faults(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    sim.faults.clear()
    return Response(204)


@_route("GET", "/log")
def _get_log(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, sim.request_log.entries())


@_route("DELETE", "/log")
def _clear_log(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    sim.request_log.clear()
    return Response(204)


@_route("GET", "/concurrency")
def _get_concurrency(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, {"inFlight": sim.concurrency.in_flight, "peak": sim.concurrency.peak})


@_route("DELETE", "/concurrency")
def _reset_concurrency(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    sim.concurrency.reset()
    return Response(204)


@_route("GET", "/webhooks")
def _get_webhooks(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    hooks = sim.webhooks
    if hooks is None:
        return json_response(200, {"installed": False, "url": None, "pending": 0, "attempts": []})
    return json_response(
        200,
        {
            "installed": True,
            "url": hooks.url,
            "duplicateRate": hooks.duplicate_rate,
            "pending": hooks.pending,
            "attempts": list(hooks.attempts),
        },
    )


@_route("PUT", "/webhooks")
def _put_webhooks(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    if sim.webhooks is None:
        return error_response(409, "CONFLICT", "this PBX has no bridge module (seed without 'bridge')")
    body = _body(req)
    if "url" in body:
        sim.webhooks.url = body["url"]
    if "duplicateRate" in body:
        rate = float(body["duplicateRate"])
        if not 0.0 <= rate <= 1.0:
            raise ValueError("duplicateRate must be between 0 and 1")
        sim.webhooks.duplicate_rate = rate
    return Response(204)


@_route("POST", "/config")
def _config(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    body = _body(req)
    if "loginType" in body:
        if body["loginType"] not in ("Internal", "ActiveDirectory"):
            raise ValueError("loginType must be Internal or ActiveDirectory")
        sim.pbx.login_type = body["loginType"]
    if "tokenLifetimeS" in body:
        sim.pbx.token_lifetime_s = float(body["tokenLifetimeS"])
    return Response(204)


@_route("POST", r"/users/([^/]+)/rival")
def _rival(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    """A rival sync writes to the user, origin "integration": `{"dnd"?, "presence"?, "message"?}` once
    (nothing given: DND toggles), or `{"everyMs", "count"? (-1 = until DELETE /__sim/rivals), "message"?}`
    periodically (DND toggles, or the text alternates between `message` and "")."""
    body = _body(req)
    user = _user(sim, m.group(1))
    dnd, presence, message = body.get("dnd"), body.get("presence") or None, body.get("message")
    if dnd is not None and not isinstance(dnd, bool):
        raise ValueError("dnd must be a boolean")
    if presence is not None and presence not in CHAT_PRESENCES:
        raise ValueError(f"presence must be one of {', '.join(CHAT_PRESENCES)}")
    if message is not None and not isinstance(message, str):
        raise ValueError("message must be a string")
    if "everyMs" in body:
        every_s = float(body["everyMs"]) / 1000
        if every_s <= 0:
            raise ValueError("everyMs must be positive")
        sim.rivals.start(user, every_s, int(body.get("count", -1)), message)
        return json_response(202, {"periodic": True})
    sim.rivals.flip(user, dnd, presence, message)
    return json_response(200, sim.pbx.user_state(user))


@_route("DELETE", "/rivals")
def _stop_rivals(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    sim.rivals.stop()
    return Response(204)


@_route("GET", "/bridge")
def _get_bridge(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    bridge, hooks = sim.pbx.bridge, sim.webhooks
    if bridge is None or hooks is None:
        return json_response(200, {"installed": False})
    return json_response(200, {
        "installed": True, "instance": bridge.instance, "contractVersion": bridge.contract_version,
        "signEvents": hooks.sign_events, "signingSecretDiffers": hooks.signing_secret is not None,
        "timestampOffsetS": hooks.timestamp_offset_s, "clockSkewS": sim.pbx.clock_skew_s,
    })


@_route("PUT", "/bridge")
def _put_bridge(sim: StarfaceSimulator, req: Request, m: re.Match[str]) -> Response:
    """Breaks (or mends) the module instance for conformance tests: `{"instance"?, "secret"? (the
    module's secret: entry points and signatures), "signingSecret"? (only signatures; null = the
    module's), "signEvents"?, "timestampOffsetS"?, "clockSkewS"?, "contractVersion"? ("1" | "1.1")}`."""
    bridge, hooks = sim.pbx.bridge, sim.webhooks
    if bridge is None or hooks is None:
        return error_response(409, "CONFLICT", "this PBX has no bridge module (seed without 'bridge')")
    body = _body(req)
    if "instance" in body:
        bridge.instance = str(body["instance"])
    if "secret" in body:
        bridge.secret = str(body["secret"])
        hooks.set_secret(bridge.secret)
    if "signingSecret" in body:
        hooks.signing_secret = None if body["signingSecret"] is None else str(body["signingSecret"])
    if "signEvents" in body:
        if not isinstance(body["signEvents"], bool):
            raise ValueError("signEvents must be a boolean")
        hooks.sign_events = body["signEvents"]
    if "timestampOffsetS" in body:
        hooks.timestamp_offset_s = float(body["timestampOffsetS"])
    if "clockSkewS" in body:
        sim.pbx.clock_skew_s = hooks.clock_skew_s = float(body["clockSkewS"])
    if "contractVersion" in body:
        if body["contractVersion"] not in ("1", "1.1"):
            raise ValueError("contractVersion must be 1 or 1.1")
        bridge.contract_version = body["contractVersion"]
    return Response(204)
