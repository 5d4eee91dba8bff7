"""The servers the chaos suite may kill: its own redis-server and its own PostgreSQL cluster.

Both listen on free ports of 127.0.0.1 and live in temporary folders, so the suite never touches the
machine's shared Redis (6379) or PostgreSQL (5432). Redis runs as in compose/compose.yaml (append-only
file), so a restart is a crash of a production-like Redis; PostgreSQL restarts by `pg_ctl stop -m
immediate` (a crash: no checkpoint, recovery from WAL at the next start). As root, initdb and postgres
run as the `postgres` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from embedded.redis_server import RedisServer, free_port


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)  # polling interval of a condition with a deadline


@dataclass
class RedisProcess(RedisServer):
    """redis-server with an append-only file in its own folder; `kill()` is a crash, `start()` reloads."""

    port: int = field(default_factory=free_port)
    persistence: tuple[str, ...] = ("--appendonly", "yes", "--save", "")
    folder: Path | None = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-redis-")))
    start_timeout_s: float = 30.0

    def kill(self) -> None:
        self.stop()

    def close(self) -> None:
        self.stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return Path(initdb).parent


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster (trust auth on 127.0.0.1) that the suite can crash and restart."""

    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-pg-")))
    bin: Path = field(default_factory=_postgres_bin)

    def __post_init__(self) -> None:
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            self.folder.chmod(0o755)
            shutil.chown(self.folder, "postgres", "postgres")

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *command: str, timeout: float = 120.0) -> None:
        argv = [str(self.bin / command[0]), *command[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        completed = subprocess.run(argv, cwd=self.folder, capture_output=True, text=True, timeout=timeout)
        if completed.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {completed.stderr.strip()[-2000:]}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
                   "-c max_connections=300 -c shared_buffers=128MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")
        _wait(self.ready, 30.0, f"PostgreSQL on port {self.port}")

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend is killed, no shutdown checkpoint."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.admin_url(libpq=True), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def admin_url(self, libpq: bool = False) -> str:
        scheme = "postgresql" if libpq else "postgresql+psycopg"
        return f"{scheme}://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, prefix: str = "chaos") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url(libpq=True), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
