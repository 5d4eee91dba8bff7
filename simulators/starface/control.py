"""`StarfaceSimControl`: the test-side client of the simulator's /__sim/ control API."""

from __future__ import annotations

import time
from typing import Any

import httpx


class StarfaceSimControl:
    """Drives a running simulator (in-process or `teamsconnect sim starface`) over HTTP."""

    def __init__(self, base_url: str, *, verify: bool | str = True, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/__sim", verify=verify, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(
                f"simulator control {method} {path} -> {response.status_code}: {response.text}"
            )
        return response.json() if response.content else None

    # simulated people
    def ring(self, login: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{login}/call", {"action": "ring"})

    def answer(self, login: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{login}/call", {"action": "answer"})

    def hang_up(self, login: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{login}/call", {"action": "end"})

    def set_telephony(self, login: str, state: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{login}/telephony", {"state": state})

    def toggle_dnd_by_hand(self, login: str, on: bool) -> dict[str, Any]:
        return self._call("POST", f"/users/{login}/dnd", {"dnd": on})

    def app_overwrites_chat(self, login: str, presence: str | None, message: str = "") -> dict[str, Any]:
        return self._call("POST", f"/users/{login}/chat", {"presence": presence, "message": message})

    def rival_flip(self, login: str, *, dnd: bool | None = None, presence: str | None = None,
                   message: str | None = None) -> dict[str, Any]:
        """Another sync on the PBX writes (origin "integration"); nothing given: DND toggles."""
        body: dict[str, Any] = {"dnd": dnd, "presence": presence}
        if message is not None:
            body["message"] = message
        return self._call("POST", f"/users/{login}/rival", body)

    def rival_periodic(self, login: str, every_s: float, count: int = -1, message: str | None = None) -> None:
        body: dict[str, Any] = {"everyMs": every_s * 1000, "count": count}
        if message is not None:
            body["message"] = message
        self._call("POST", f"/users/{login}/rival", body)

    def stop_rivals(self) -> None:
        self._call("DELETE", "/rivals")

    def user_state(self, login: str) -> dict[str, Any]:
        """{id, login, dnd, chatPresence, chatPresenceMessage, telephonyState, phoneConfig}."""
        return self._call("GET", f"/users/{login}")

    # the PBX itself
    def expire_tokens(self, login: str | None = None) -> int:
        return self._call("POST", "/tokens/expire", {"login": login})["expired"]

    def inject_fault(
        self,
        path: str,
        *,
        status: int | None = None,
        delay_s: float = 0.0,
        count: int = 1,
        method: str | None = None,
        xmlrpc_fault: int | None = None,
    ) -> None:
        """`path` exact or ending in `*` (prefix); `count` -1 = until `clear_faults()`."""
        self._call(
            "POST",
            "/faults",
            {
                "path": path,
                "status": status,
                "delayMs": delay_s * 1000,
                "count": count,
                "method": method,
                "xmlrpcFault": xmlrpc_fault,
            },
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def configure(self, *, login_type: str | None = None, token_lifetime_s: float | None = None) -> None:
        body: dict[str, Any] = {}
        if login_type is not None:
            body["loginType"] = login_type
        if token_lifetime_s is not None:
            body["tokenLifetimeS"] = token_lifetime_s
        self._call("POST", "/config", body)

    def request_log(self) -> list[dict[str, Any]]:
        """Every /rest and /xml-rpc request: {method, path, query, headers, body}."""
        return self._call("GET", "/log")

    def clear_request_log(self) -> None:
        self._call("DELETE", "/log")

    # the bridge module instance, deliberately broken for conformance tests
    def break_bridge(self, **settings: Any) -> None:
        """`instance`, `secret`, `signingSecret`, `signEvents`, `timestampOffsetS`, `clockSkewS`,
        `contractVersion` (see PUT /__sim/bridge)."""
        self._call("PUT", "/bridge", settings)

    def bridge(self) -> dict[str, Any]:
        return self._call("GET", "/bridge")
    def concurrency(self) -> dict[str, int]:
        """{inFlight, peak}: /rest and /xml-rpc requests served at this moment and the most at once."""
        return self._call("GET", "/concurrency")

    def reset_concurrency(self) -> None:
        """Starts a new peak from the requests in flight now."""
        self._call("DELETE", "/concurrency")

    # webhooks
    def set_webhook(self, url: str | None = None, *, duplicate_rate: float | None = None) -> None:
        body: dict[str, Any] = {}
        if url is not None:
            body["url"] = url
        if duplicate_rate is not None:
            body["duplicateRate"] = duplicate_rate
        self._call("PUT", "/webhooks", body)

    def webhooks(self) -> dict[str, Any]:
        """{installed, url, duplicateRate, pending, attempts}; an attempt is
        {eventId, type, attempt, status, error, duplicate, answer} (answer: the receiver's body, cut at
        300 characters)."""
        return self._call("GET", "/webhooks")

    def wait_webhooks_idle(self, timeout: float = 5.0) -> None:
        """Polls until no delivery is queued or in flight; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while self.webhooks()["pending"]:
            if time.monotonic() > deadline:
                raise TimeoutError("simulator still has webhook deliveries pending")
            time.sleep(0.01)  # polling interval of a condition with a deadline
