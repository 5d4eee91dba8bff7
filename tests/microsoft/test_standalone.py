"""`teamsconnect sim microsoft` runs standalone, and plain MSAL + httpx (no project code) can use it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.microsoft import make_seed

CLIENT_SCRIPT = """
import json, ssl, sys
import httpx, msal, requests
base, ca, tenant, client_id, secret, user = sys.argv[1:]
session = requests.Session()
session.verify, session.trust_env = ca, False  # REQUESTS_CA_BUNDLE would override verify otherwise
app = msal.ConfidentialClientApplication(client_id, client_credential=secret, authority=f"{base}/{tenant}",
                                         instance_discovery=False, http_client=session)
token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
graph = httpx.Client(base_url=base + "/v1.0", verify=ssl.create_default_context(cafile=ca),
                     headers={"Authorization": "Bearer " + token})
before = graph.get(f"/users/{user}/presence").json()
status = graph.post(f"/users/{user}/presence/setPresence", json={"sessionId": client_id,
    "availability": "Busy", "activity": "InACall", "expirationDuration": "PT10M"}).status_code
after = graph.post("/communications/getPresencesByUserId", json={"ids": [user]}).json()["value"][0]
print(json.dumps([before["availability"], status, after["availability"], after["activity"]]))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    seed = make_seed(n_users=3)
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    port, tls_dir = _free_port(), tmp_path / "tls"
    cli = Path(sys.executable).with_name("teamsconnect")
    process = subprocess.Popen(
        [
            str(cli),
            "sim",
            "microsoft",
            "--seed",
            str(seed_file),
            "--port",
            str(port),
            "--tls-dir",
            str(tls_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"simulator did not start: {process.communicate()[1].decode()}")
            time.sleep(0.05)  # polling for the port, bounded by the deadline
    yield f"https://127.0.0.1:{port}", tls_dir / "ca.pem", seed["tenants"][0]
    process.terminate()
    process.wait(10)


def test_it_serves_a_plain_msal_and_httpx_client(standalone: tuple[str, Path, dict[str, Any]]) -> None:
    base, ca, tenant = standalone
    app = tenant["apps"][0]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT_SCRIPT,
            base,
            str(ca),
            tenant["domain"],
            app["clientId"],
            app["secret"],
            tenant["users"][0]["id"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ca.parent,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["Offline", 200, "Busy", "InACall"]
