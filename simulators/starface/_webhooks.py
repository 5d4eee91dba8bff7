"""Delivers bridge events to the tenant's webhook, as the contract's bridge does: signed, at least once.

One background thread works two time-ordered queues: call (telephony) events first, whenever one is due,
then the rest (DND and chat events), as docs/starface-bridge.md asks of the bridge: a STARFACE call must
reach Teams in time while our own burst of DND and chat writes comes back as events. A non-2xx answer
(or no answer) is retried with exponential backoff until `retry_window_s` (the contract: 10 minutes) has
passed since the first try. After a 2xx, the same event is sent once more with probability
`duplicate_rate`, which is how at-least-once delivery looks to the receiver. Each attempt is signed afresh
with the current timestamp. Ordering between events is not guaranteed (calls overtake, retries happen);
receivers order by `occurredAt`.

A deliberately broken bridge, for conformance tests (`PUT /__sim/bridge`): `sign_events=False` sends no
signature header, `signing_secret` signs with another secret than the module's, `timestamp_offset_s`
stamps every request that far off, and `clock_skew_s` is the PBX clock's offset (it moves the timestamp too).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import random
import select
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Contract: sha256=hex(HMAC_SHA256(bridge_secret, timestamp + "." + raw_body))."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _Poster:
    """POSTs with the standard library's http.client over kept-alive connections, one idle list per
    server: a PBX's HTTP client costs it little, and httpx's per-request work was most of this simulator's
    CPU in a 2,000-change burst (4,000 event deliveries on the benchmark's shared cores)."""

    def __init__(self, timeout_s: float, verify: bool) -> None:
        self._timeout_s = timeout_s
        self._tls = ssl.create_default_context() if verify else ssl._create_unverified_context()
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The answer's status and body; raises OSError or http.client.HTTPException."""
        parts = urllib.parse.urlsplit(url)
        server = (parts.scheme, parts.netloc)
        connection = self._take(server)
        try:
            connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                               body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.setdefault(server, []).append(connection)
        return response.status, answer

    def _take(self, server: tuple[str, str]) -> http.client.HTTPConnection:
        """An idle connection to ``server`` the server has not closed meanwhile, else a new one."""
        while True:
            with self._lock:
                idle = self._idle.get(server)
                connection = idle.pop() if idle else None
            if connection is None:
                scheme, netloc = server
                if scheme == "https":
                    return http.client.HTTPSConnection(netloc, timeout=self._timeout_s, context=self._tls)
                return http.client.HTTPConnection(netloc, timeout=self._timeout_s)
            if connection.sock is not None and not select.select([connection.sock], [], [], 0)[0]:
                return connection
            connection.close()  # readable while idle: the server closed it (or sent something unasked)

    def idle_connections(self) -> int:
        with self._lock:
            return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        with self._lock:
            idle, self._idle = [c for cs in self._idle.values() for c in cs], {}
        for connection in idle:
            connection.close()


@dataclass
class _Delivery:
    event: dict[str, Any]
    first_try: float
    attempt: int = 0
    duplicate: bool = False


class WebhookDispatcher:
    def __init__(
        self,
        secret: str,
        url: str | None,
        *,
        duplicate_rate: float = 0.0,
        retry_base_s: float = 0.5,
        retry_max_s: float = 60.0,
        retry_window_s: float = 600.0,
        timeout_s: float = 5.0,
        verify: bool = True,
        rng_seed: int | None = None,
    ) -> None:
        self._secret = secret
        self.url = url
        self.duplicate_rate = duplicate_rate
        self.retry_base_s, self.retry_max_s, self.retry_window_s = retry_base_s, retry_max_s, retry_window_s
        self._rng = random.Random(rng_seed)
        self._http = _Poster(timeout_s, verify)
        self._calls: list[tuple[float, int, _Delivery]] = []  # telephony events, sent first when due
        self._others: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self.attempts: list[dict[str, Any]] = []  # delivery log, read by the control API
        self.sign_events = True
        self.signing_secret: str | None = None  # None: the module's secret
        self.timestamp_offset_s = 0.0
        self.clock_skew_s = 0.0
        self._thread = threading.Thread(target=self._run, name="starface-sim-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._http.close()

    def enqueue(self, event: dict[str, Any]) -> None:
        self._push(_Delivery(event, time.monotonic()), due=time.monotonic())

    def _push(self, delivery: _Delivery, due: float) -> None:
        queue = self._calls if delivery.event.get("type") == "telephony" else self._others
        with self._cond:
            heapq.heappush(queue, (due, next(self._seq), delivery))
            self._cond.notify_all()

    def _next_due(self, now: float) -> list[tuple[float, int, _Delivery]] | None:
        """The queue whose head is due now, calls before the rest; None when nothing is due."""
        for queue in (self._calls, self._others):
            if queue and queue[0][0] <= now:
                return queue
        return None

    def _wait_s(self) -> float | None:
        """Seconds until the earliest queued delivery is due; None when nothing is queued."""
        heads = [queue[0][0] for queue in (self._calls, self._others) if queue]
        return max(0.0, min(heads) - time.monotonic()) if heads else None

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._calls) + len(self._others) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or in flight; False when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._calls or self._others or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (queue := self._next_due(time.monotonic())) is None:
                    self._cond.wait(self._wait_s())
                if self._stopping or queue is None:
                    return
                _, _, delivery = heapq.heappop(queue)
                self._in_flight += 1
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def set_secret(self, secret: str) -> None:
        self._secret = secret

    def _post(self, url: str, event: dict[str, Any]) -> tuple[int | None, str, str]:
        """One signed POST (as configured, broken or not): (status or None, answer text, error name)."""
        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time() + self.clock_skew_s + self.timestamp_offset_s))
        headers = {"Content-Type": "application/json", "X-TeamsConnect-Timestamp": timestamp}
        if self.sign_events:
            headers["X-TeamsConnect-Signature"] = sign(self.signing_secret or self._secret, timestamp, body)
        try:
            status, answer = self._http.post(url, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            return None, "", type(exc).__name__
        return status, answer.decode("utf-8", "replace")[:300], ""

    def _log(
        self, event: dict[str, Any], attempt: int, status: int | None, error: str, duplicate: bool,
        answer: str = "",
    ) -> None:
        with self._cond:
            self.attempts.append(
                {
                    "eventId": event["eventId"],
                    "type": event["type"],
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "duplicate": duplicate,
                    "answer": answer,
                }
            )

    def send_now(self, event: dict[str, Any]) -> dict[str, Any]:
        """Contract 1.1 sendTestEvent: one POST now, no retry; what the service answered."""
        if not self.url:
            self._log(event, 1, None, "no webhook URL configured", False)
            return {"sent": False, "status": 0, "answer": "no webhook URL configured in the module instance",
                    "webhookUrl": ""}
        status, answer, error = self._post(self.url, event)
        self._log(event, 1, status, error, False, answer)
        return {"sent": status is not None, "status": status or 0, "answer": answer or error,
                "webhookUrl": self.url}

    def _attempt(self, delivery: _Delivery) -> None:
        delivery.attempt += 1
        url = self.url
        status: int | None = None
        error = answer = ""
        if url:
            status, answer, error = self._post(url, delivery.event)
        else:
            error = "no webhook URL configured"
        self._log(delivery.event, delivery.attempt, status, error, delivery.duplicate, answer)
        now = time.monotonic()
        if not url:  # a bridge without a configured URL has nowhere to send to; the event is lost
            return
        if status is not None and 200 <= status < 300:
            if not delivery.duplicate and self._rng.random() < self.duplicate_rate:
                self._push(_Delivery(delivery.event, now, duplicate=True), due=now)
            return
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** (delivery.attempt - 1))
        if now + delay - delivery.first_try <= self.retry_window_s:
            self._push(delivery, due=now + delay)
