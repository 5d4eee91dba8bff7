"""A private redis-server on a free port, so a test run or a benchmark never touches (or is touched by)
anyone else's Redis.

The test suite gets one (tests/conftest.py), the web tests a second one as a broker they can take down, and
the chaos suite one with an append-only file that it crashes and restarts (bench/chaos_infra.py). Two
`make test` runs on one machine therefore share nothing but the PostgreSQL server, where each creates
databases of its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """One redis-server process without persistence; `stop()`/`start()` simulate an outage."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    #: Persistence: none by default; the chaos suite asks for an append-only file in ``folder``.
    persistence: tuple[str, ...] = ("--save", "", "--appendonly", "no")
    folder: Path | None = None
    #: How long a start may take (loading an append-only file answers LOADING for a while).
    start_timeout_s: float = field(default=15.0)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def ping(self) -> bool:
        # A raw PING: redis-py's client would retry with backoff on a refused connection.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install "
                               "redis-server), or point TEAMSCONNECT_TEST_REDIS_URL at a Redis")
        folder = ["--dir", str(self.folder)] if self.folder is not None else []
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", *folder, *self.persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait(self.ping, self.start_timeout_s, f"redis-server on port {self.port} to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # a crash, and instant (a graceful shutdown takes seconds)
            self.process.wait(timeout=5)
            self.process = None
        self._wait(lambda: not self.ping(), 15.0, f"redis-server on port {self.port} to stop")

    @staticmethod
    def _wait(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.02)

    @classmethod
    def started(cls) -> RedisServer:
        server = cls(port=free_port())
        server.start()
        return server
