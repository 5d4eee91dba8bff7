"""Delivers bridge events to the tenant's webhook, as the contract's bridge does: signed, at least once.

One background thread works a time-ordered queue. A non-2xx answer (or no answer) is retried with
exponential backoff until `retry_window_s` (the contract: 10 minutes) has passed since the first try.
After a 2xx, the same event is sent once more with probability `duplicate_rate`, which is how
at-least-once delivery looks to the receiver. Each attempt is signed afresh with the current timestamp.
Ordering between events is not guaranteed once a retry happens; receivers order by `occurredAt`.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Contract: sha256=hex(HMAC_SHA256(bridge_secret, timestamp + "." + raw_body))."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


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
        self._http = httpx.Client(timeout=timeout_s, verify=verify)
        self._queue: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self.attempts: list[dict[str, Any]] = []  # delivery log, read by the control API
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
        with self._cond:
            heapq.heappush(self._queue, (due, next(self._seq), delivery))
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or in flight; False when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._queue else self._queue[0][0] - time.monotonic())
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, delivery: _Delivery) -> None:
        delivery.attempt += 1
        url = self.url
        status: int | None = None
        error = ""
        if url:
            body = json.dumps(delivery.event, separators=(",", ":")).encode("utf-8")
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-TeamsConnect-Timestamp": timestamp,
                "X-TeamsConnect-Signature": sign(self._secret, timestamp, body),
            }
            try:
                status = self._http.post(url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        else:
            error = "no webhook URL configured"
        with self._cond:
            self.attempts.append(
                {
                    "eventId": delivery.event["eventId"],
                    "type": delivery.event["type"],
                    "attempt": delivery.attempt,
                    "status": status,
                    "error": error,
                    "duplicate": delivery.duplicate,
                }
            )
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
