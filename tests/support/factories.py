"""Builders for rows the tests need; explicit arguments, sensible defaults, no magic."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import LinkState, Tenant, UserLink
from models.crypto import SecretBox
from models.secrets import set_secrets

CLIENT_SECRET = "s3cr3t-client-value-never-logged"
STARFACE_PASSWORD = "pbx-pass-never-logged"
BRIDGE_SECRET = "bridge-secret-never-logged"


def make_tenant(session: Session, box: SecretBox, name: str = "contoso", **overrides: Any) -> Tenant:
    """A tenant with encrypted secrets; keyword arguments override any column."""
    tenant = Tenant(
        name=name,
        ms_directory_id=overrides.pop("ms_directory_id", "11111111-1111-1111-1111-111111111111"),
        ms_client_id=overrides.pop("ms_client_id", "22222222-2222-2222-2222-222222222222"),
        starface_base_url=overrides.pop("starface_base_url", "https://pbx.contoso.example"),
        starface_login_id=overrides.pop("starface_login_id", "0001"),
        bridge_instance=overrides.pop("bridge_instance", "TeamsConnectBridge"),
        **overrides,
    )
    set_secrets(
        tenant,
        box,
        ms_client_secret=CLIENT_SECRET,
        starface_password=STARFACE_PASSWORD,
        bridge_secret=BRIDGE_SECRET if tenant.bridge_instance else None,
    )
    session.add(tenant)
    session.flush()
    return tenant


def make_user_links(session: Session, tenant: Tenant, count: int, first_account: int = 100) -> list[UserLink]:
    """``count`` linked users of ``tenant``."""
    links = [
        UserLink(
            tenant_id=tenant.id,
            starface_account_id=first_account + n,
            login_id=str(1000 + first_account + n),
            email=f"user{first_account + n}@{tenant.name}.example",
            entra_object_id=f"00000000-0000-0000-0000-{first_account + n:012d}",
            display_name=f"User {first_account + n}",
            state=LinkState.LINKED.value,
        )
        for n in range(count)
    ]
    session.add_all(links)
    session.flush()
    return links
