"""`teamsconnect tenant ...`: add, list, show, change, test and delete tenants on the configured database.

Every command runs in one transaction (nothing half-written on an error) and reports bad input, a
missing schema or an unreachable database as one `error:` line per problem with exit code 2, never a
traceback. Secrets are never printed, and never taken as literal command-line values (those show in `ps`
and the shell history): they are read from a file (`@path`), from standard input (`-`) or a hidden
prompt, and shown as "set" / "not set".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cli.errors import fail_on_bad_settings
from config import get_settings
from connectors.graph import GraphError
from connectors.starface import StarfaceError
from models import Tenant, TenantHealth, UserLink
from models.crypto import SecretBox, box_from_settings
from models.db import make_engine, make_session_factory, transaction
from models.findings import finding_list
from presence.categories import Category, teams_name
from presence.linking import LinkState
from presence.policy import DEFAULT_RULES
from tenants.changes import deep_merge, lookup, nest
from tenants.diagnostics import egress_note, with_egress
from tenants.policy import rules_of
from tenants.schema import SECRET_FIELDS, TenantConfigError, parse_category, validate_config
from tenants.service import (
    TenantInUse,
    create_tenant,
    delete_tenant,
    find_tenant,
    holding_count,
    needs_directory_sync,
    set_rule,
    update_tenant,
)
from tenants.summary import (
    BRIDGE_FEATURES,
    implausible_secret_expiry,
    secret_expiry_warning,
    tenant_summary,
    tier,
)

tenant_app = typer.Typer(help="Add, inspect, change, test and delete tenants (customers).",
                         no_args_is_help=True)


#: JSON nested deeper than this is refused before it is parsed, so json.loads never recurses far. No tenant
#: value nests more than a few levels; parsing 100,000 levels ran Python out of stack, and catching the
#: RecursionError was not enough: when the garbage collector ran during its unwinding, "Exception ignored
#: in sys.unraisablehook" came out ahead of our error (seen once in CI).
MAX_JSON_DEPTH = 64


def _nested_too_deeply(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text opens more than ``limit`` arrays and objects inside one another (strings are
    skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class _Fail(Exception):
    """A plain-language problem with the command's input (exit code 2)."""


def _echo_error(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)


@contextmanager
def _session(with_box: bool = False) -> Iterator[tuple[Session, SecretBox | None]]:
    """One transaction on the configured database (and the secret box); turns every expected failure
    into `error:` lines and exit code 2."""
    try:
        with fail_on_bad_settings():
            settings = get_settings()
            box = box_from_settings(settings) if with_box else None
            engine = make_engine(settings.effective_database_url)
        try:
            with transaction(make_session_factory(engine)) as session:
                yield session, box
        finally:
            engine.dispose()
    except TenantConfigError as exc:
        for where, what in exc.problems:
            _echo_error(f"{where}: {what}" if where else what)
        raise typer.Exit(2) from None
    except (_Fail, TenantInUse) as exc:
        _echo_error(str(exc))
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        _echo_error(_database_problem(exc))
        raise typer.Exit(2) from None


def _database_problem(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    if "no such table" in text or "does not exist" in text:
        return f"the database has no TeamsConnect schema yet ({text}): run `teamsconnect db upgrade`"
    return f"database: {text} (check TEAMSCONNECT_DATABASE_URL and that the server runs)"


def _tenant(session: Session, name_or_id: str) -> Tenant:
    tenant = find_tenant(session, name_or_id)
    if tenant is None:
        raise _Fail(f"no tenant with the name, slug or id {name_or_id!r}; `teamsconnect tenant list` shows "
                    "the tenants")
    return tenant


#: A tenant definition is a few KB; a value or definition file beyond this is a wrong file.
MAX_FILE_BYTES = 1024 * 1024


def _read_text(path: str, what: str) -> str:
    """A UTF-8 text file of at most MAX_FILE_BYTES ('-': standard input), or a _Fail naming it and the fix."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(path).expanduser().open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Fail(f"{what}: cannot read {path!r}: {exc.strerror or exc}") from None
    source = "standard input" if path == "-" else repr(path)
    if len(data) > MAX_FILE_BYTES:
        raise _Fail(f"{what}: {source} is larger than {MAX_FILE_BYTES // 1024} KB; give the file that holds "
                    "only this value or tenant definition")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Fail(f"{what}: {source} is not UTF-8 text (invalid byte at offset {exc.start}); save it as "
                    "UTF-8 (not UTF-16 or a binary file)") from None


def _read_value(raw: str, key: str) -> str:
    """`@path` reads the value from a file (trailing newline dropped); anything else is the value."""
    if not raw.startswith("@"):
        return raw
    return _read_text(raw[1:], key).rstrip("\r\n")


def _prompt_secret(key: str) -> str:
    return typer.prompt(f"{key} (input hidden)", hide_input=True)


_SAFE_SECRET_FORMS = ("give it as @FILE (a file holding only the secret), as - to read it from standard "
                      "input, or leave the value out to be prompted with hidden input")


def _secret_value(raw: str, key: str) -> str:
    """A secret from `@FILE` or `-` (standard input, first line); a literal value is refused: it would
    stay visible in `ps` and in the shell history."""
    if raw.startswith("@"):
        return _read_value(raw, key)
    if raw == "-":
        if sys.stdin.isatty():
            return _prompt_secret(key)
        lines = _read_text("-", key).splitlines()  # one secret per run; a second `-` reads nothing
        return lines[0] if lines else ""
    raise _Fail(f"{key}: a secret given on the command line is visible in `ps` and the shell history; "
                + _SAFE_SECRET_FORMS)


def _parse_assignment(item: str) -> tuple[str, Any]:
    """`key=value` -> (key, value): `null` is None, `[..]`/`{..}` is JSON, a bare secret key prompts."""
    key, has_value, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise _Fail(f"{item!r}: expected key=value, e.g. options.set_telephony=true")
    if key in SECRET_FIELDS:
        return key, _secret_value(raw, key) if has_value and raw else _prompt_secret(key)
    if not has_value:
        raise _Fail(f"{key}: expected {key}=VALUE (only secrets are prompted for)")
    value = _read_value(raw, key)
    if value.strip().lower() in ("null", "none"):
        return key, None
    if value.strip()[:1] in ("[", "{"):
        if _nested_too_deeply(value):
            raise _Fail(f"{key}: the JSON value is nested too deeply; give a flat list or object")
        try:
            return key, json.loads(value)
        except ValueError as exc:
            raise _Fail(f"{key}: the value is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    return key, value


# --- add -------------------------------------------------------------------------------------------------

# CLI flag -> config field, for `tenant add` without (or on top of) a file.
_FLAG_FIELDS = {
    "name": "name",
    "description": "description",
    "directory_id": "microsoft.directory_id",
    "client_id": "microsoft.client_id",
    "client_secret": "microsoft.client_secret",
    "secret_expires": "microsoft.secret_expires_at",
    "login_url": "microsoft.login_base_url",
    "graph_url": "microsoft.graph_base_url",
    "starface_url": "starface.base_url",
    "starface_login": "starface.login_id",
    "starface_password": "starface.password",
    "bridge_instance": "starface.bridge.instance",
    "bridge_secret": "starface.bridge.secret",
    "selection": "selection.mode",
    "group_id": "selection.starface_group_id",
    "poll_interval": "poll_interval_s",
}


def _load_file(file: Path) -> dict[str, Any]:
    text = _read_text(str(file), "--file")
    if _nested_too_deeply(text):
        raise _Fail(f"--file: {file} is nested too deeply to be a tenant definition; check that it is the "
                    "right file (see `teamsconnect tenant add --help` for the shape)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _Fail(f"--file: {file} is not valid JSON ({where})") from None
    if not isinstance(data, dict):
        raise _Fail("--file: the tenant definition must be a JSON object")
    return data


@tenant_app.command("add")
def add(
    file: Path | None = typer.Option(None, "--file", "-f", help="JSON tenant definition ('-' reads stdin)."),
    name: str | None = typer.Option(None, help='Unique instance name, e.g. "TeamsConnect Vertrieb".'),
    description: str | None = typer.Option(None),
    directory_id: str | None = typer.Option(None, help="Entra directory (tenant) id or domain."),
    client_id: str | None = typer.Option(None, help="Application (client) id of the Entra app."),
    client_secret: str | None = typer.Option(
        None, help="@FILE reads it from a file, - from stdin; omit to be prompted. Never the value itself."),
    secret_expires: str | None = typer.Option(None, help="Client secret expiry date, YYYY-MM-DD."),
    login_url: str | None = typer.Option(None, help="Entra login base URL (default Microsoft's)."),
    graph_url: str | None = typer.Option(None, help="Graph base URL (default Microsoft's)."),
    starface_url: str | None = typer.Option(None, help="PBX base URL, https://pbx.example.com."),
    starface_login: str | None = typer.Option(None, help="Login id of the STARFACE admin service account."),
    starface_password: str | None = typer.Option(None, help="@FILE, - (stdin) or omit to be prompted."),
    bridge_instance: str | None = typer.Option(None, help="Bridge module instance name (tier 2)."),
    bridge_secret: str | None = typer.Option(
        None, help="Bridge secret as @FILE or - (stdin); enables the bridge tier."),
    selection: str | None = typer.Option(None, help="all_except_listed or group_plus_listed."),
    group_id: int | None = typer.Option(None, help="STARFACE group id (group_plus_listed)."),
    login_id: list[str] = typer.Option([], "--login-id", help="STARFACE login id listed (repeatable)."),
    poll_interval: float | None = typer.Option(None, help="Seconds between presence polls (>= 1)."),
    disabled: bool = typer.Option(False, "--disabled", help="Store the tenant without syncing it yet."),
) -> None:
    """Add a tenant from a JSON file and/or flags (flags win). Next: `teamsconnect tenant test NAME`,
    then `teamsconnect tenant sync NAME`."""
    flags = locals()
    with _session(with_box=True) as (session, box):
        data = _load_file(file) if file is not None else {}
        dotted: dict[str, Any] = {}
        for flag, field in _FLAG_FIELDS.items():
            if flags[flag] is not None:
                value = flags[flag]
                if field in SECRET_FIELDS:
                    dotted[field] = _secret_value(value, f"--{flag.replace('_', '-')}")
                else:
                    dotted[field] = _read_value(value, field) if isinstance(value, str) else value
        if login_id:
            dotted["selection.login_ids"] = list(login_id)
        if disabled:
            dotted["enabled"] = False
        config_data = deep_merge(data, nest(dotted))
        if sys.stdin.isatty():  # ask for missing secrets instead of failing on them
            own_app = lookup(config_data, "microsoft.app") in (None, "own")
            for key in ("microsoft.client_secret", "starface.password")[0 if own_app else 1:]:
                if lookup(config_data, key) is None:
                    config_data = deep_merge(config_data, nest({key: _prompt_secret(key)}))
        tenant = create_tenant(session, box, validate_config(config_data))  # type: ignore[arg-type]
        typer.echo(f"added tenant {tenant.name} (slug {tenant.slug}, id {tenant.id}, tier {tier(tenant)})")
        _warn_expiry(tenant, entered=True)
        typer.echo(f"check the credentials with: teamsconnect tenant test {tenant.slug}")


def _warn_expiry(tenant: Tenant, entered: bool = False) -> None:
    """The expiry warnings for the tenant's client secret; `entered`: the date was just given."""
    warnings = [implausible_secret_expiry(tenant.ms_secret_expires_at)] if entered else []
    warnings.append(secret_expiry_warning(tenant.ms_secret_expires_at))
    for warning in dict.fromkeys(w for w in warnings if w):
        typer.secho(f"warning: {warning.replace('NAME', tenant.slug)}", fg=typer.colors.YELLOW)


# --- list / show -------------------------------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _linked_counts(session: Session, tenant_id: int | None = None) -> dict[tuple[int, str], int]:
    query = select(UserLink.tenant_id, UserLink.state, func.count())
    query = query.group_by(UserLink.tenant_id, UserLink.state)
    if tenant_id is not None:
        query = query.where(UserLink.tenant_id == tenant_id)
    return {(row[0], row[1]): row[2] for row in session.execute(query)}


@tenant_app.command("list")
def list_tenants() -> None:
    """All tenants: id, name, enabled, tier, linked users, last success, last error."""
    with _session() as (session, _):
        tenants = session.scalars(select(Tenant).order_by(Tenant.id)).all()
        health = {h.tenant_id: h for h in session.scalars(select(TenantHealth))}
        counts = _linked_counts(session)
        if not tenants:
            typer.echo("no tenants yet: add one with `teamsconnect tenant add --file tenant.json`")
            return
        table = Table("id", "name", "slug", "enabled", "tier", "linked users", "last success", "last error")
        for tenant in tenants:
            row = health.get(tenant.id)
            error = "-"
            if row is not None and row.last_error_at:
                error = f"{_when(row.last_error_at)} {row.last_error_code or ''}: " + (
                    row.last_error_message or "")[:200]
            table.add_row(
                str(tenant.id), tenant.name, tenant.slug, "yes" if tenant.enabled else "no", tier(tenant),
                str(counts.get((tenant.id, LinkState.LINKED.value), 0)),
                _when(row.last_success_at if row else None), error,
            )
        Console(soft_wrap=True).print(table)


def _print_section(title: str, values: dict[str, Any], indent: str = "  ") -> None:
    typer.secho(title, bold=True)
    for key, value in values.items():
        if isinstance(value, dict):
            typer.echo(f"{indent}{key}:")
            for sub, item in value.items():
                typer.echo(f"{indent}  {sub}: {_shown(item)}")
        else:
            typer.echo(f"{indent}{key}: {_shown(value)}")


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


@tenant_app.command("show")
def show(
    tenant_ref: str = typer.Argument(..., metavar="NAME|SLUG|ID"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Configuration (secrets shown as set/not set), health, user link states, tier and warnings."""
    with _session() as (session, _):
        tenant = _tenant(session, tenant_ref)
        summary = tenant_summary(tenant)
        h = tenant.health
        health = {
            "last_success_at": _when(h.last_success_at) if h else "-",
            "last_error_at": _when(h.last_error_at) if h else "-",
            "last_error": (f"{h.last_error_code or ''} {h.last_error_message or ''}".strip() if h else "")
            or "-",
            "throttled_until": _when(h.throttled_until) if h else "-",
            "polls_ok": h.polls_ok if h else 0,
            "polls_failed": h.polls_failed if h else 0,
            "throttle_count": h.throttle_count if h else 0,
            "changes_applied": h.changes_applied if h else 0,
        }
        counts = _linked_counts(session, tenant.id)
        links = {state.value: counts.get((tenant.id, state.value), 0) for state in LinkState}
        missing = [] if tenant.has_bridge else list(BRIDGE_FEATURES)
        # One text for the expiry warning: computed here, not also the copy maintenance stores in health.
        warning = secret_expiry_warning(tenant.ms_secret_expires_at)
        warnings = [warning] if warning else []
        egress = get_settings().egress_ip_list
        findings = finding_list(session, tenant.id)
        if as_json:
            typer.echo(json.dumps({**summary, "health": health, "user_links": links,
                                   "missing_features": missing, "warnings": warnings,
                                   "service_egress_ips": egress, "findings": findings}, indent=2,
                                  default=_when))
            return
        rules = summary.pop("rules")
        typer.secho(f"Tenant {tenant.name} (slug {tenant.slug}, id {tenant.id}): "
                    f"{'enabled' if tenant.enabled else 'DISABLED'}, "
                    f"tier {summary.pop('tier')}", bold=True)
        for section in ("options", "selection", "microsoft", "starface"):
            _print_section(section.capitalize(), summary.pop(section))
        _print_section("General", {k: v for k, v in summary.items() if k not in ("id", "name", "slug")})
        _print_section("Rules (`teamsconnect tenant rules` to change)",
                       {f"{teams_name(Category(k))} ({k})": f"dnd={v['dnd']}, text={_shown(v['chat_text'])}, "
                        f"symbol={v['chat_symbol']}" for k, v in rules.items()})
        _print_section("Health", {**health, "last_error": with_egress(health["last_error"], egress)})
        _print_section("Service", {"egress IPs (trust these in Conditional Access and the PBX firewall)":
                                   egress_note(egress)})
        _print_section("User links", links)
        if missing:
            typer.secho("Not available in the REST-only tier (install the bridge module and set "
                        "starface.bridge.secret to get them):", bold=True)
            for feature in missing:
                typer.echo(f"  - {feature}")
        for warning in warnings:
            typer.secho(f"warning: {warning.replace('NAME', tenant.slug)}", fg=typer.colors.YELLOW)
        for f in findings:
            typer.secho(f"finding {f['kind']}: {f['evidence']} ({f['count']}x, first "
                        f"{_when(f['first_seen'])}, last {_when(f['last_seen'])})\n  fix: {f['fix']}",
                        fg=typer.colors.YELLOW)


# --- set / rules ------------------------------------------------------------------------------------------


@tenant_app.command("set")
def set_values(
    tenant_ref: str = typer.Argument(..., metavar="NAME|SLUG|ID"),
    assignments: list[str] = typer.Argument(
        ..., metavar="KEY=VALUE...",
        help="E.g. options.set_telephony=true, selection.login_ids=1001,1002, starface.bridge=null, "
             "microsoft.client_secret=@secret.txt (or just microsoft.client_secret to be prompted).",
    ),
) -> None:
    """Change settings; the whole tenant is validated first, so a bad value changes nothing."""
    with _session(with_box=True) as (session, box):
        tenant = _tenant(session, tenant_ref)
        changes = dict(_parse_assignment(item) for item in assignments)
        changed = update_tenant(session, box, tenant, changes)  # type: ignore[arg-type]
        if changed:
            typer.echo(f"updated tenant {tenant.name}: {', '.join(changed)}")
        else:
            typer.echo(f"tenant {tenant.name}: nothing changed")
        if "microsoft.secret_expires_at" in changed:
            _warn_expiry(tenant, entered=True)
        resync = tenant.enabled and needs_directory_sync(changed)
        tenant_id, ref = tenant.id, tenant.slug
    if resync:  # after the commit: the sync must see the change
        _start_directory_sync(tenant_id, ref)


def _start_directory_sync(tenant_id: int, ref: str) -> None:
    """Hands a directory sync of the tenant to the workers (TaskQueue port); says what to do when the
    broker cannot take it."""
    from sync.ports import QueueUnavailable
    from workers.app import configure_broker
    from workers.task_queue import CELERY_QUEUE  # the Celery app is only needed here

    broker = get_settings().broker_url
    if broker.startswith("memory://"):
        typer.echo(f"the change affects which users are synced: run `teamsconnect tenant sync {ref}` to link "
                   "them now (the broker is in-process, so no worker can be asked from here)")
        return
    configure_broker(broker)
    try:
        CELERY_QUEUE.directory_sync(tenant_id)
    except QueueUnavailable as exc:
        typer.secho(f"warning: could not start a directory sync now: the broker (TEAMSCONNECT_BROKER_URL) is "
                    f"unreachable ({exc}); the change is saved and the 15-minute directory sync will pick it "
                    f"up (or run `teamsconnect tenant sync {ref}`)", fg=typer.colors.YELLOW)
        return
    typer.echo(f"started a directory sync of tenant {ref}: the user links follow the change within a minute")


@tenant_app.command("rules")
def rules(
    tenant_ref: str = typer.Argument(..., metavar="NAME|SLUG|ID"),
    category: str | None = typer.Argument(
        None, help='Teams status to change, as Teams shows it ("Beschäftigt - Am Telefon") or e.g. InACall.'),
    dnd: str | None = typer.Option(None, "--dnd", help="set, clear or leave."),
    text: str | None = typer.Option(None, "--text", help="Chat-status text for this status."),
    no_text: bool = typer.Option(False, "--no-text", help="No chat-status text for this status."),
    symbol: str | None = typer.Option(
        None, "--symbol", help="Chat symbol: AVAILABLE, AWAY, DO_NOT_DISTURB, EXTENDED_AWAY or keep."),
) -> None:
    """Show the rule table, or change one row: `tenant rules NAME "Busy - In a call" --dnd set --text
    "On a call" --symbol DO_NOT_DISTURB`."""
    with _session() as (session, _):
        tenant = _tenant(session, tenant_ref)
        if category is not None:
            if dnd is None and text is None and not no_text and symbol is None:
                raise _Fail("give --dnd, --text / --no-text and/or --symbol to change the rule")
            if text is not None and no_text:
                raise _Fail("--text and --no-text contradict each other; give one")
            cat = parse_category(category)
            current = rules_of(tenant)[cat]
            new_dnd = dnd if dnd is not None else current.dnd.value
            new_text = None if no_text else text if text is not None else current.chat_text
            row = set_rule(session, tenant, cat, new_dnd, new_text, symbol)
            typer.echo(f"tenant {tenant.name}: rule {teams_name(cat)} ({cat.value}) is now dnd={new_dnd}, "
                       f"text={_shown(new_text)}, symbol={row.chat_symbol or 'keep'}")
        table = Table("Teams status", "category", "STARFACE DND", "chat text", "chat symbol", "")
        for cat, rule in rules_of(tenant).items():
            shown_text = rule.chat_text if rule.chat_text is not None else "(none)"
            changed = "" if rule == DEFAULT_RULES[cat] else "changed"
            shown_symbol = rule.chat_symbol.value if rule.chat_symbol is not None else "keep"
            table.add_row(teams_name(cat), cat.value, rule.dnd.value, shown_text, shown_symbol, changed)
        Console(soft_wrap=True).print(table)
        if not tenant.has_bridge:
            typer.echo("note: REST-only tier - chat texts take effect only with the bridge")


# --- test / delete ----------------------------------------------------------------------------------------


_COLOURS = {"OK": typer.colors.GREEN, "FAILED": typer.colors.RED}


@tenant_app.command("test")
def test(
    tenant_ref: str = typer.Argument(..., metavar="NAME|SLUG|ID"),
    timeout: float = typer.Option(10.0, help="Seconds to wait for each answer."),
) -> None:
    """Check the credentials against Microsoft and STARFACE; exit code 1 if any check fails."""
    from sync.connection_test import run_connection_test
    from sync.runtime import build_runtime

    with fail_on_bad_settings():
        settings = get_settings()
        runtime = build_runtime(settings)  # the PBX's gate and the tenant's Graph block, as the sync has them
    try:
        with _session() as (session, _):
            tenant = _tenant(session, tenant_ref)
            try:
                results = run_connection_test(runtime, session, tenant, timeout)
            except GraphError as exc:  # an unreadable provider certificate or key: the message says the fix
                raise _Fail(str(exc)) from None
    finally:
        runtime.close()
    typer.echo(f"the service connects to Microsoft and your PBX from: {egress_note(settings.egress_ip_list)}")
    failed = 0
    for result in results:
        colour = _COLOURS.get(result.status, typer.colors.YELLOW)
        typer.secho(f"{result.status:<7} {result.name}: {result.detail}", fg=colour)
        failed += result.status == "FAILED"
    if failed:
        typer.secho(f"{failed} of {len(results)} checks FAILED", fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(f"all checks passed for tenant {tenant.name}")


@tenant_app.command("sync")
def sync(tenant_ref: str = typer.Argument(..., metavar="NAME|SLUG|ID")) -> None:
    """Link STARFACE users to Microsoft 365 users now (beat does it every 15 minutes) and report why any
    user is not linked."""
    from sync.directory import sync_directory
    from sync.runtime import build_runtime
    from workers.task_queue import CELERY_QUEUE  # the Celery app is only needed here

    with fail_on_bad_settings():
        runtime = build_runtime(get_settings())
    try:
        with _session() as (session, _):
            tenant = _tenant(session, tenant_ref)
        try:
            counts = sync_directory(runtime, tenant, CELERY_QUEUE)
        except (GraphError, StarfaceError) as exc:
            _echo_error(f"directory sync failed: {exc} (`teamsconnect tenant test {tenant.slug}` checks "
                        "the credentials)")
            raise typer.Exit(1) from None
        with _session() as (session, _):
            unlinked = session.scalars(
                select(UserLink)
                .where(UserLink.tenant_id == tenant.id, UserLink.state != LinkState.LINKED.value)
                .order_by(UserLink.login_id)
            ).all()
            for link in unlinked:
                typer.echo(f"{link.state:<16} {link.login_id:<8} {link.reason}")
    finally:
        runtime.close()
    summary = ", ".join(f"{state}: {count}" for state, count in sorted(counts.items())
                        if state != "unknown_login_ids")
    typer.echo(f"tenant {tenant.name}: {summary}")
    for login in counts.get("unknown_login_ids", []):
        typer.secho(f"warning: login id {login} in the tenant's list is not a STARFACE user",
                    fg=typer.colors.YELLOW)


@tenant_app.command("delete")
def delete(
    tenant_ref: str = typer.Argument(..., metavar="NAME|SLUG|ID"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Delete even while our outputs are still set."),
) -> None:
    """Delete a tenant with its user links, applied states, audit trail and health."""
    with _session() as (session, _):
        tenant = _tenant(session, tenant_ref)
        name, tenant_id = tenant.name, tenant.id
        if not force and holding_count(session, tenant):
            delete_tenant(session, tenant)  # raises TenantInUse with the explanation
        if not yes:
            typer.confirm(f"Delete tenant {tenant.name} (id {tenant.id}) and all its data?", abort=True)
        delete_tenant(session, tenant, force=True)
    typer.echo(f"deleted tenant {name} (id {tenant_id})")
