"""A webhook relay between the STARFACE simulator and the web app that delays, reorders and duplicates.

The simulator's bridge posts its signed events here; each one is answered 202 at once (as a queueing
proxy would) and forwarded byte for byte, headers included, after a random delay of up to ``max_delay_s``,
so events of one call arrive out of order; with probability ``duplicate_rate`` it is forwarded once more
after another random delay. A forward that gets no 2xx is retried (bounded), so the relay itself loses
nothing: what goes missing is the receiver's doing. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

_FORWARDED_HEADERS = ("Content-Type", "X-TeamsConnect-Timestamp", "X-TeamsConnect-Signature")
FORWARD_ATTEMPTS = 20


class WebhookRelay:
    def __init__(self, target_url: str, *, max_delay_s: float, duplicate_rate: float, seed: int = 13) -> None:
        self.target_url = target_url
        self.max_delay_s = max_delay_s
        self.duplicate_rate = duplicate_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pending = 0
        self.received = 0
        self.forwarded = 0
        self.duplicated = 0
        self.failed = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k: self.headers[k] for k in _FORWARDED_HEADERS if self.headers.get(k)}
                relay._accept(body, headers)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="chaos-relay")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/relay"

    def start(self) -> WebhookRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _accept(self, body: bytes, headers: dict[str, str]) -> None:
        with self._lock:
            self.received += 1
            delays = [self._rng.uniform(0, self.max_delay_s)]
            if self._rng.random() < self.duplicate_rate:
                delays.append(self._rng.uniform(0, self.max_delay_s))
                self.duplicated += 1
            self._pending += len(delays)
        for delay in delays:
            timer = threading.Timer(delay, self._forward, args=(body, headers))
            timer.daemon = True
            timer.start()

    def _forward(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            with httpx.Client(timeout=10.0) as client:
                for attempt in range(FORWARD_ATTEMPTS):
                    try:
                        answer = client.post(self.target_url, content=body, headers=headers)
                        if 200 <= answer.status_code < 300:
                            with self._lock:
                                self.forwarded += 1
                            return
                    except httpx.HTTPError:
                        pass
                    time.sleep(min(2.0, 0.1 * 2 ** attempt))  # backoff between bounded retries
            with self._lock:
                self.failed += 1
        finally:
            with self._lock:
                self._pending -= 1
