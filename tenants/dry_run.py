"""What a tenant's first cycle would write, computed from live reads and nothing written: Microsoft
presence of the linked users, their STARFACE DND, and the tenant's rule table and options.

Also the wizard's live checks of credentials that are not stored yet (Microsoft sign-in, STARFACE admin
login), with the connectors' messages, which name the AADSTS code and its fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.graph import GraphClient, GraphError
from connectors.starface import StarfaceError, StarfaceRestClient
from models import Tenant, UserLink
from models.crypto import SecretBox, SecretBoxError
from models.secrets import read_secrets
from presence.categories import categorize
from presence.linking import LinkState
from presence.policy import DndAction
from tenants.diagnostics import CheckResult, graph_client
from tenants.policy import rules_of
from tenants.provider_app import ProviderApp, ProviderAppMissing

MAX_DRY_RUN_USERS = 200


@dataclass(frozen=True)
class PlannedWrite:
    login_id: str
    display_name: str
    teams_status: str
    category: str
    dnd_now: bool | None
    dnd_write: str  # "set" / "clear" / "none"
    chat_text: str | None


def _hide(detail: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "***")
    return detail


def check_microsoft(directory_id: str, client_id: str, client_secret: str, login_base_url: str,
                    graph_base_url: str, verify: str | bool, timeout: float) -> CheckResult:
    graph = GraphClient(directory_id, client_id, client_secret, login_base_url=login_base_url,
                        graph_base_url=graph_base_url, verify=verify, timeout=timeout)
    try:
        roles = graph.check_access()
        return CheckResult("Microsoft sign-in and user read", "OK",
                           "token issued; app roles: " + (", ".join(roles) or "(none)"))
    except (GraphError, OSError, ValueError) as exc:
        return CheckResult("Microsoft sign-in and user read", "FAILED", _hide(str(exc), [client_secret]))
    finally:
        graph.close()


def check_starface(base_url: str, login_id: str, password: str, verify: str | bool,
                   timeout: float) -> CheckResult:
    try:
        with StarfaceRestClient(base_url, login_id, password, verify=verify, timeout=timeout) as rest:
            seen = rest.check_access()
        return CheckResult("STARFACE REST login and admin rights", "OK",
                           f"logged in as {seen.login} with admin rights; sees {seen.user_count} users and "
                           f"{seen.group_count} groups")
    except (StarfaceError, OSError, ValueError) as exc:
        return CheckResult("STARFACE REST login and admin rights", "FAILED", _hide(str(exc), [password]))


def dry_run(session: Session, tenant: Tenant, box: SecretBox, verify: str | bool,
            timeout: float, provider: ProviderApp | None = None) -> tuple[list[PlannedWrite], str | None]:
    """(the writes the first cycle would make per linked user, an error message or None). Reads only."""
    try:
        secrets = read_secrets(tenant, box)
    except SecretBoxError as exc:
        return [], str(exc)
    hidden = [s for s in (secrets.ms_client_secret, secrets.starface_password, secrets.bridge_secret) if s]
    links = list(session.scalars(select(UserLink).where(
        UserLink.tenant_id == tenant.id, UserLink.state == LinkState.LINKED.value)
        .order_by(UserLink.login_id).limit(MAX_DRY_RUN_USERS)))
    if not links:
        return [], "no linked users yet: run the directory sync (User selection) first"
    rules = rules_of(tenant)
    try:
        graph = graph_client(tenant, secrets, provider, verify, timeout)
    except ProviderAppMissing as missing:
        return [], str(missing)
    try:
        ids = [link.entra_object_id or "" for link in links]
        presences = {p.user_id: p for p in graph.get_presences(ids)}
        with StarfaceRestClient(tenant.starface_base_url, tenant.starface_login_id, secrets.starface_password,
                                verify=verify, timeout=timeout) as rest:
            planned = []
            for link in links:
                presence = presences.get(link.entra_object_id or "")
                if presence is None:
                    continue
                category = categorize(presence.availability, presence.activity, presence.out_of_office)
                rule = rules[category]
                dnd_now = rest.get_dnd(link.starface_account_id) if tenant.set_dnd else None
                # First cycle: nothing is ours yet, so "clear" clears nothing we set.
                dnd_write = "set" if tenant.set_dnd and rule.dnd is DndAction.SET and not dnd_now else "none"
                chat = rule.chat_text if tenant.set_chat_text and tenant.has_bridge else None
                planned.append(PlannedWrite(link.login_id, link.display_name or "",
                                            f"{presence.availability}/{presence.activity}", category.value,
                                            dnd_now, dnd_write, chat))
        return planned, None
    except (GraphError, StarfaceError, OSError, ValueError) as exc:
        return [], _hide(str(exc), hidden)
    finally:
        graph.close()
