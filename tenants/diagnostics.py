"""Connection diagnostics for a stored tenant: Microsoft sign-in and reads, STARFACE REST admin login and
(tier 2) the bridge, each check with its result and the connector's human message (which says the fix).

Read-only: nothing is written to Microsoft, the PBX or the database.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.graph import GraphClient, GraphError
from connectors.starface import StarfaceBridgeClient, StarfaceError, StarfaceRestClient
from models import Tenant, UserLink
from models.crypto import SecretBox, SecretBoxError
from models.secrets import TenantSecrets, read_secrets
from tenants.provider_app import ProviderApp, ProviderAppMissing


@dataclass(frozen=True)
class CheckResult:
    """One line of `tenant test`: status OK / FAILED / SKIPPED, and the connector's human message."""

    name: str
    status: str
    detail: str


def hide_secrets(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by *** - the last line of defence: no secret ever
    reaches a page or the terminal (the connectors' messages quote none)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _check(name: str, call: Callable[[], str], secrets: list[str]) -> CheckResult:
    """Runs one check; a connector error becomes FAILED with its message (which says how to fix it)."""
    try:
        return CheckResult(name, "OK", call())
    except (GraphError, StarfaceError, SecretBoxError) as exc:
        detail = str(exc)
    except (OSError, ValueError) as exc:  # e.g. an unreadable TEAMSCONNECT_CA_BUNDLE
        detail = f"{type(exc).__name__}: {exc}"
    return CheckResult(name, "FAILED", hide_secrets(detail, secrets))


def graph_client(tenant: Tenant, secrets: TenantSecrets, provider: ProviderApp | None, verify: str | bool,
                 timeout: float) -> GraphClient:
    """A Graph client for a one-off check: the tenant's own app, or the deployment's provider app
    (ProviderAppMissing when the tenant uses one that is not configured)."""
    if tenant.uses_provider_app:
        if provider is None:
            raise ProviderAppMissing()
        client_id, credential = provider.client_id, provider.credential
    else:
        client_id, credential = tenant.ms_client_id or "", secrets.ms_client_secret or ""
    return GraphClient(tenant.ms_directory_id, client_id, credential, login_base_url=tenant.login_base_url,
                       graph_base_url=tenant.graph_base_url, verify=verify, timeout=timeout)


#: Around each STARFACE check (its requests go one after another): a slot of the PBX's gate (the sync's).
PbxSlot = Callable[[], AbstractContextManager[object]]


def run_checks(session: Session, tenant: Tenant, box: SecretBox, verify: str | bool,
               timeout: float, provider: ProviderApp | None = None,
               egress_ips: list[str] | None = None, pbx_slot: PbxSlot = nullcontext,
               graph_blocked_s: float = 0.0) -> list[CheckResult]:
    """Builds the tenant's connectors and checks Microsoft sign-in + reads, STARFACE REST admin login
    and (tier 2) the bridge. Read-only: nothing is written to Microsoft, the PBX or the database.
    ``provider`` is the deployment's multi-tenant app, for a tenant that signs in with it. The sync's
    limits come in from above (sync/connection_test.py): ``pbx_slot`` around each STARFACE check, and
    ``graph_blocked_s``, the Retry-After Microsoft still asks of the tenant (no presence read until then)."""
    try:
        secrets = read_secrets(tenant, box)
    except SecretBoxError as exc:
        return [CheckResult("stored secrets", "FAILED", str(exc))]
    hidden = [s for s in (secrets.ms_client_secret, secrets.starface_password, secrets.bridge_secret) if s]
    results: list[CheckResult] = []

    try:
        graph = graph_client(tenant, secrets, provider, verify, timeout)
    except ProviderAppMissing as missing:
        results.append(CheckResult("Microsoft sign-in and user read", "FAILED", str(missing)))
        return results + _starface_checks(tenant, secrets, hidden, verify, timeout, pbx_slot)
    try:
        signin = _check("Microsoft sign-in and user read", lambda: "token issued; app roles: "
                        + (", ".join(graph.check_access()) or "(none)"), hidden)
        results.append(replace(signin, detail=with_egress(signin.detail, egress_ips or [])))
        linked = session.scalars(select(UserLink.entra_object_id).where(
            UserLink.tenant_id == tenant.id, UserLink.entra_object_id.is_not(None)).limit(1)).first()
        if results[-1].status != "OK":
            results.append(CheckResult("Microsoft presence read", "SKIPPED", "needs a working sign-in"))
        elif graph_blocked_s > 0:
            results.append(CheckResult("Microsoft presence read", "SKIPPED",
                                       f"Microsoft asked this tenant to wait (Retry-After) for another "
                                       f"{graph_blocked_s:.0f} s; the polls wait too"))
        elif linked is None:
            results.append(CheckResult("Microsoft presence read", "SKIPPED",
                                       "no linked users yet (the directory sync links them)"))
        else:
            results.append(_check("Microsoft presence read", lambda: "presence of {} read: {}".format(
                linked, ", ".join(f"{p.availability}/{p.activity}" for p in graph.get_presences([linked]))
                or "no presence returned"), hidden))
    finally:
        graph.close()

    return results + _starface_checks(tenant, secrets, hidden, verify, timeout, pbx_slot)


def _starface_checks(tenant: Tenant, secrets: TenantSecrets, hidden: list[str], verify: str | bool,
                     timeout: float, pbx_slot: PbxSlot) -> list[CheckResult]:
    results: list[CheckResult] = []
    with StarfaceRestClient(tenant.starface_base_url, tenant.starface_login_id, secrets.starface_password,
                            verify=verify, timeout=timeout) as rest:
        def rest_access() -> str:
            seen = rest.check_access()
            return (f"logged in as {seen.login} (account {seen.account_id}) with admin rights; "
                    f"sees {seen.user_count} users and {seen.group_count} groups")

        with pbx_slot():
            results.append(_check("STARFACE REST login and admin rights", rest_access, hidden))

    if not tenant.has_bridge:
        results.append(CheckResult("STARFACE bridge", "SKIPPED", "no bridge configured: REST-only tier "
                                   "(DND only; no chat text, telephony status or call events)"))
        return results
    with StarfaceBridgeClient(tenant.starface_base_url, tenant.starface_login_id, secrets.starface_password,
                              instance=tenant.bridge_instance or "", secret=secrets.bridge_secret or "",
                              verify=verify, timeout=timeout) as bridge:
        def ping() -> str:
            info = bridge.ping()
            return (f"bridge '{tenant.bridge_instance}' answers (contract v{info.version}, "
                    f"STARFACE {info.pbx_version})")

        with pbx_slot():
            results.append(_check("STARFACE bridge ping", ping, hidden))
    return results


#: Said wherever the service's egress addresses are shown (tenant test/show, the AADSTS50076 fix).
EGRESS_UNSET = ("not published by the operator (TEAMSCONNECT_EGRESS_IPS); ask your provider for the "
                "addresses the service connects from")


def egress_note(egress_ips: list[str]) -> str:
    """The service's egress addresses for the customer's Conditional Access and PBX firewall."""
    if not egress_ips:
        return EGRESS_UNSET
    return ", ".join(egress_ips)


def with_egress(detail: str, egress_ips: list[str]) -> str:
    """An AADSTS50076 explanation completed with the addresses to trust (the connector cannot know them)."""
    if "AADSTS50076" not in detail:
        return detail
    return f"{detail} The service connects from: {egress_note(egress_ips)}."
