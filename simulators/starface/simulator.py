"""`StarfaceSimulator`: the HTTP(S) server in a thread that serves /rest, /xml-rpc and /__sim/.

The server is the standard library's threading HTTP server speaking HTTP/1.1 with keep-alive, so a
phoneconfig GET/PUT over a kept-alive connection costs well under a few milliseconds.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from simulators.starface import _bridge_rpc, _control, _rest
from simulators.starface._control import FaultInjector, RequestLog
from simulators.starface._http import Request, Response, error_response
from simulators.starface._pbx import Pbx
from simulators.starface._webhooks import WebhookDispatcher
from simulators.starface.seed import load_seed

DEFAULT_TOKEN_LIFETIME_S = 4 * 3600  # reference §1.1: "valid for 4 hours"


class StarfaceSimulator:
    """A simulated STARFACE PBX (REST, bridge module over XML-RPC, signed webhooks, control API).

    `start()` returns once the socket listens; `base_url` is then e.g. `http://127.0.0.1:41234`.
    With `tls=True` a throwaway CA (trustme) signs the server certificate; pass `ca_file` as `verify=`.
    """

    def __init__(
        self,
        seed: dict[str, Any],
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S,
        *,
        webhook_retry_base_s: float = 0.5,
        webhook_retry_window_s: float = 600.0,
        request_log_limit: int = 20_000,
        rng_seed: int | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        parsed = load_seed(seed)
        self.webhooks: WebhookDispatcher | None = None
        if parsed.bridge is not None:
            self.webhooks = WebhookDispatcher(
                parsed.bridge.secret,
                parsed.bridge.webhook,
                duplicate_rate=parsed.bridge.duplicateRate,
                retry_base_s=webhook_retry_base_s,
                retry_window_s=webhook_retry_window_s,
                rng_seed=rng_seed,
            )
        self.pbx = Pbx(parsed, token_lifetime_s=token_lifetime_s, events=self._on_event)
        if self.webhooks is not None:
            self.pbx.send_test = self.webhooks.send_now
        self.rivals = _control.RivalSyncs(self.pbx)
        self.faults = FaultInjector()
        self.request_log = RequestLog(request_log_limit)
        self.concurrency = ConcurrencyCounter()
        self._host, self._port, self._tls = host, port, tls
        self._certfile, self._keyfile = certfile, keyfile
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: str | None = None

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.webhooks is not None:
            self.webhooks.enqueue(event)

    def start(self) -> StarfaceSimulator:
        server = _Server((self._host, self._port), _Handler)
        server.sim = self
        if self._tls:
            server.ssl_context = self._ssl_context()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="starface-sim", daemon=True
        )
        self._thread.start()
        if self.webhooks is not None:
            self.webhooks.start()
        return self

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self._certfile:
            context.load_cert_chain(self._certfile, self._keyfile)
            return context
        import trustme  # only needed for TLS without a given certificate

        ca = trustme.CA()
        ca.issue_cert(self._host, "localhost").configure_cert(context)
        self._tmp = tempfile.TemporaryDirectory(prefix="starface-sim-")
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        return context

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.rivals.stop()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> StarfaceSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def wait_webhooks_idle(self, timeout: float = 5.0) -> bool:
        """True once every queued event is delivered (or given up); a PBX without bridge is always idle."""
        return True if self.webhooks is None else self.webhooks.wait_idle(timeout)

    def dispatch(self, req: Request) -> Response:
        if req.path.startswith("/__sim/"):
            return _control.handle(self, req)
        entry = self.request_log.add(req)
        with self.concurrency:
            response = self._serve(req)
        self.request_log.answered(entry, response.status, response.body)
        return response

    def _serve(self, req: Request) -> Response:
        fault = self.faults.take(req.method, req.path)
        if fault is not None:
            if fault.delay_s > 0:
                time.sleep(fault.delay_s)  # the simulated latency itself, not synchronisation
            if fault.xmlrpc_fault is not None:
                return _bridge_rpc.fault_response(fault.xmlrpc_fault, "injected PBX error")
            if fault.status is not None:
                return error_response(fault.status, "INJECTED", f"injected fault {fault.status}")
        if req.path == "/rest" or req.path.startswith("/rest/"):
            return _rest.handle(self.pbx, req)
        if req.path == "/xml-rpc":
            return _bridge_rpc.handle(self.pbx, req)
        return error_response(404, "NOT_FOUND", f"no resource {req.path}")


class ConcurrencyCounter:
    """/rest and /xml-rpc requests being served right now, and the most at once since the last reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.in_flight


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: StarfaceSimulator
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:  # handshake happens in the handler thread, not the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the 40 ms ACK stall
    server: _Server
    server_version = "STARFACE-Simulator"

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, path, query, self.headers, body)
        try:
            resp = self.server.sim.dispatch(req)
        except Exception:  # reference §3.8: unexpected error -> 500 {code,message}
            resp = error_response(500, "INTERNAL_ERROR", "unexpected error")
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if resp.body and self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:  # the request log replaces stderr noise
        pass
