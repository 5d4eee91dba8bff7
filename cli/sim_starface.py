"""`teamsconnect sim starface`: runs the STARFACE simulator standalone until Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import typer


def starface(
    seed: Path = typer.Option(
        ...,
        "--seed",
        exists=True,
        dir_okay=False,
        readable=True,
        help="Seed JSON: users, groups and an optional bridge (see docs/starface-bridge.md).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8090, "--port", help="Port to listen on (0 = any free port)."),
    tls: bool = typer.Option(
        False, "--tls", help="Serve HTTPS (a throwaway CA unless --cert/--key are given)."
    ),
    cert: Path | None = typer.Option(
        None, "--cert", exists=True, dir_okay=False, help="PEM certificate chain."
    ),
    key: Path | None = typer.Option(None, "--key", exists=True, dir_okay=False, help="PEM private key."),
    token_lifetime_s: float = typer.Option(
        4 * 3600, "--token-lifetime", help="REST token lifetime in seconds."
    ),
    webhook: str | None = typer.Option(None, "--webhook", help="Override the seed's bridge webhook URL."),
) -> None:
    """Serve a simulated STARFACE PBX: /rest, the bridge on /xml-rpc, signed webhooks and /__sim/."""
    from simulators.starface import StarfaceSimulator  # imported late: `teamsconnect --help` stays fast

    try:
        data: dict[str, Any] = json.loads(seed.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise typer.BadParameter(f"{seed} is not JSON: {exc}", param_hint="--seed") from exc
    if webhook is not None:
        if not isinstance(data.get("bridge"), dict):
            raise typer.BadParameter(
                "the seed has no 'bridge', so there is no webhook", param_hint="--webhook"
            )
        data["bridge"]["webhook"] = webhook
    try:
        sim = StarfaceSimulator(
            data,
            host=host,
            port=port,
            tls=tls,
            token_lifetime_s=token_lifetime_s,
            certfile=str(cert) if cert else None,
            keyfile=str(key) if key else None,
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError and names the bad key
        raise typer.BadParameter(str(exc), param_hint="--seed") from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim.start()
    bridge = data.get("bridge")
    typer.echo(f"STARFACE simulator listening on {sim.base_url}")
    typer.echo(
        f"  bridge: {bridge.get('instance', 'TeamsConnectBridge') if bridge else 'not installed (REST only)'}"
    )
    if sim.ca_file:
        typer.echo(f"  CA certificate: {sim.ca_file}")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
