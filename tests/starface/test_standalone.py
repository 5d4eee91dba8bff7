"""`teamsconnect sim starface --seed FILE --port P` runs standalone and serves a plain stdlib client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from simulators.starface import make_seed
from tests.starface.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, BOB, BRIDGE_SECRET

CLI = Path(sys.executable).parent / "teamsconnect"
PLAIN_CLIENT = Path(__file__).parent / "plain_client.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_runs_standalone_and_serves_a_plain_script(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(make_seed(3, admin_password=ADMIN_PASSWORD, bridge_secret=BRIDGE_SECRET)))
    port = _free_port()
    server = subprocess.Popen(
        [str(CLI), "sim", "starface", "--seed", str(seed_file), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = server.stdout.readline()  # printed once the socket listens
        assert f"listening on http://127.0.0.1:{port}" in banner, banner or server.stderr.read()

        run = subprocess.run(
            [
                sys.executable,
                str(PLAIN_CLIENT),
                f"http://127.0.0.1:{port}",
                ADMIN_LOGIN,
                ADMIN_PASSWORD,
                str(BOB),
                BRIDGE_SECRET,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert (result["dndBefore"], result["dndAfter"]) == (False, True)
        assert result["states"] == [
            {
                "account": BOB,
                "login": "1101",
                "dnd": True,
                "chatPresence": "AVAILABLE",
                "chatPresenceMessage": "",
                "telephonyState": "AVAILABLE",
            }
        ]
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_it_rejects_a_seed_with_an_unknown_key(tmp_path: Path) -> None:
    seed = make_seed(1)
    seed["users"][0]["pasword"] = "typo"
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    run = subprocess.run(
        [str(CLI), "sim", "starface", "--seed", str(seed_file), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    assert "pasword" in run.stderr
