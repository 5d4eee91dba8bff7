"""`MicrosoftSimulator`: the simulator as one HTTPS server (uvicorn in a background thread).

MSAL refuses plain http authorities, so the server always speaks TLS with a throwaway test CA (trustme);
its certificate is written to `<tls_dir>/ca.pem` for clients (`verify=sim.ca_path`).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from simulators.microsoft.app import SimulatorApp
from simulators.microsoft.state import Settings, SimState, load_seed


class MicrosoftSimulator:
    """Login + Graph simulator. `start()` returns once the port accepts connections; `stop()` joins."""

    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_dir: str | Path | None = None,
        presence_limit: int = 1500,
        presence_window_s: float = 30.0,
        token_lifetime_s: int = 3599,
        fractional_retry_after: bool | None = None,
    ) -> None:
        # None: the realistic default, integer and fractional Retry-After values mixed.
        self.state = SimState(
            Settings(
                token_lifetime_s=token_lifetime_s,
                presence_limit=presence_limit,
                presence_window_s=presence_window_s,
                retry_after_format=(
                    "mixed"
                    if fractional_retry_after is None
                    else ("fractional" if fractional_retry_after else "integer")
                ),
            )
        )
        load_seed(self.state.directory, seed or {"tenants": []})
        self.host = host
        self._port = port
        self._tmp = tempfile.TemporaryDirectory(prefix="sim-microsoft-") if tls_dir is None else None
        self.tls_dir = Path(tls_dir) if tls_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self._port}"

    @property
    def ca_path(self) -> str:
        return str(self.tls_dir / "ca.pem")

    def _write_tls(self) -> tuple[str, str]:
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(self.ca_path)
        cert_path, key_path = self.tls_dir / "server.pem", self.tls_dir / "server.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(str(cert_path), append=True)
        cert.private_key_pem.write_to_path(str(key_path))
        return str(cert_path), str(key_path)

    def start(self) -> MicrosoftSimulator:
        cert, key = self._write_tls()
        # IPPROTO_TCP explicitly: asyncio switches Nagle off (TCP_NODELAY) only for sockets it knows are
        # TCP, and with Nagle on every small response waited ~40 ms for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            SimulatorApp(self.state),
            ssl_certfile=cert,
            ssl_keyfile=key,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            # h11, as when its CPU per Graph request became the benchmarks' yardstick of the host's speed
            # (bench/scale.py): httptools, which the web app uses where installed, would move it.
            http="h11",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),  # type: ignore[union-attr]
            name=f"sim-microsoft-{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Microsoft simulator failed to start")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        """Stop serving; clients that keep a TLS keep-alive connection open are cut after a second."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(1)
            self._server.force_exit = True
            self._thread.join(10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> MicrosoftSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
