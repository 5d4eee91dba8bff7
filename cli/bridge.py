"""`teamsconnect bridge verify TENANT`: checks a tenant's STARFACE bridge module clause by clause.

Prints each clause with PASS / FAIL / SKIP, what was seen, and for a failure the fix in the STARFACE
admin's words; exit code 1 if any clause failed, 2 for bad input (unknown tenant, settings). The test
event's arrival is observed through the coordination store (TEAMSCONNECT_REDIS_URL) the web app shares.
"""

from __future__ import annotations

import json

import typer
from sqlalchemy.exc import SQLAlchemyError

from cli.errors import fail_on_bad_settings
from config import get_settings
from models.secrets import read_secrets
from sync.bridge_verify import run_bridge_verify
from sync.runtime import build_runtime
from tenants.bridge_check import FAIL, PASS
from tenants.service import find_tenant

bridge_app = typer.Typer(help="Check a tenant's STARFACE bridge module against the contract.",
                         no_args_is_help=True)
_COLOURS = {PASS: typer.colors.GREEN, FAIL: typer.colors.RED}


@bridge_app.command("verify")
def verify(
    tenant_ref: str = typer.Argument(..., metavar="TENANT", help="Tenant name or id."),
    test_user: str | None = typer.Option(None, "--test-user", metavar="LOGIN",
                                         help="STARFACE login id for the chat and telephony round trips "
                                              "(the user sees a test status for about a second)."),
    timeout: float = typer.Option(10.0, help="Seconds to wait for each bridge answer."),
    event_timeout: float = typer.Option(10.0, help="Seconds to wait for the test event to arrive."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Exercise the tenant's bridge: ping, getStates, round trips, a signed test event, the PBX clock."""
    with fail_on_bad_settings():
        settings = get_settings()
        runtime = build_runtime(settings)
    try:
        try:
            with runtime.sessions() as session:
                tenant = find_tenant(session, tenant_ref)
                if tenant is None:
                    typer.secho(f"error: no tenant named {tenant_ref!r}; `teamsconnect tenant list` shows "
                                "the tenants", err=True, fg=typer.colors.RED)
                    raise typer.Exit(2)
                secrets = read_secrets(tenant, runtime.box)
                session.expunge(tenant)
        except SQLAlchemyError as exc:
            text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
            typer.secho(f"error: database: {text} (check TEAMSCONNECT_DATABASE_URL; `teamsconnect db "
                        "upgrade` creates the schema)", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        webhook_url = f"{settings.public_url.rstrip('/')}/hooks/starface/{tenant.id}"
        clauses = run_bridge_verify(runtime, tenant, secrets, webhook_url=webhook_url, test_user=test_user,
                                    timeout=timeout, event_timeout=event_timeout)
    finally:
        runtime.close()
    failed = sum(c.status == FAIL for c in clauses)
    if as_json:
        typer.echo(json.dumps({"tenant": tenant.name, "failed": failed,
                               "clauses": [c.as_dict() for c in clauses]}, indent=2))
    else:
        typer.secho(f"Bridge of tenant {tenant.name} (instance {tenant.bridge_instance}, webhook "
                    f"{webhook_url})", bold=True)
        for clause in clauses:
            typer.secho(f"{clause.status:<5} {clause.name}: {clause.detail}",
                        fg=_COLOURS.get(clause.status, typer.colors.YELLOW))
            if clause.fix and clause.status != PASS:
                typer.echo(f"      fix: {clause.fix}")
        typer.secho(f"{failed} of {len(clauses)} clauses FAILED" if failed else "all clauses passed",
                    fg=typer.colors.RED if failed else typer.colors.GREEN)
    if failed:
        raise typer.Exit(1)
