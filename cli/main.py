"""Entry point of the `teamsconnect` command: wires the sub-commands together, nothing else."""

from __future__ import annotations

import typer

from cli import consent, demo, processes, sim_microsoft, sim_starface
from cli.bridge import bridge_app
from cli.db import db_app
from cli.errors import fail_on_bad_settings
from cli.keys import keys_app
from cli.operator import operator_app
from cli.tenant import tenant_app

app = typer.Typer(help="TeamsConnect Cloud: keeps Microsoft Teams presence and STARFACE in step.",
                  no_args_is_help=True)
sim_app = typer.Typer(help="Run a simulator of Microsoft (login + Graph) or of a STARFACE PBX.",
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(bridge_app, name="bridge")
sim_app.command("microsoft")(sim_microsoft.microsoft)
sim_app.command("starface")(sim_starface.starface)
tenant_app.command("consent-link")(consent.consent_link_command)
app.add_typer(tenant_app, name="tenant")
app.add_typer(operator_app, name="operator")
app.add_typer(processes.healthcheck_app, name="healthcheck")
for _name in ("worker", "beat", "web", "flower"):
    app.command(_name)(getattr(processes, _name))
app.command("demo")(demo.demo)


def main() -> None:
    """The console entry point: bad settings anywhere end in one clear line and exit code 2."""
    with fail_on_bad_settings():
        app(prog_name="teamsconnect")
