"""`teamsconnect sim microsoft`: runs the Microsoft (Entra login + Graph) simulator standalone."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import typer

from simulators.microsoft import MicrosoftSimulator
from simulators.microsoft.state import SimInputError


def microsoft(
    seed: Path = typer.Option(None, "--seed", help="JSON seed file (tenants, apps, users, groups)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8443, "--port", help="HTTPS port (0 = any free port)."),
    tls_dir: Path = typer.Option(Path("sim-microsoft-tls"), "--tls-dir", help="Where ca.pem is written."),
    presence_limit: int = typer.Option(1500, "--presence-limit", help="Presence requests per window."),
    presence_window: float = typer.Option(30.0, "--presence-window", help="Throttle window in seconds."),
    token_lifetime: int = typer.Option(3599, "--token-lifetime", help="expires_in of issued tokens (s)."),
    fractional_retry_after: bool = typer.Option(False, "--fractional-retry-after",
                                                help="Send Retry-After like 2.128."),
) -> None:
    """Serve the login endpoints and Graph /v1.0 over HTTPS until interrupted (trust <tls-dir>/ca.pem)."""
    try:
        data = json.loads(seed.read_text()) if seed else {"tenants": []}
        sim = MicrosoftSimulator(data, host=host, port=port, tls_dir=tls_dir, presence_limit=presence_limit,
                                 presence_window_s=presence_window, token_lifetime_s=token_lifetime,
                                 fractional_retry_after=fractional_retry_after)
    except (OSError, ValueError, SimInputError) as exc:
        raise typer.BadParameter(f"cannot load the seed: {exc}") from exc
    sim.start()
    typer.echo(f"Microsoft simulator listening on {sim.base_url} (CA: {sim.ca_path})", err=True)
    stop = threading.Event()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
