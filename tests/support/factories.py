"""Builders for rows the tests need; explicit arguments, sensible defaults, no magic.

Tenants are created through the tenant service (tenants/service.py), so every tenant a test uses passed
the same validation as an operator's; `tenant_row` alone writes around it, for tests of the database's own
constraints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import Tenant, UserLink
from models.crypto import SecretBox
from models.secrets import set_secrets
from presence.linking import LinkState
from tenants.changes import deep_merge
from tenants.service import create_tenant

CLIENT_SECRET = "s3cr3t-client-value-never-logged"
STARFACE_PASSWORD = "pbx-pass-never-logged"
BRIDGE_SECRET = "bridge-secret-never-logged"


def tenant_definition(name: str = "contoso", bridge: bool = True) -> dict[str, Any]:
    """A valid tenant definition (tenants/schema.py) with the test secrets."""
    bridge_config = {"instance": "TeamsConnectBridge", "secret": BRIDGE_SECRET} if bridge else None
    return {
        "name": name,
        "microsoft": {"directory_id": "11111111-1111-1111-1111-111111111111",
                      "client_id": "22222222-2222-2222-2222-222222222222", "client_secret": CLIENT_SECRET},
        "starface": {"base_url": "https://pbx.contoso.example", "login_id": "0001",
                     "password": STARFACE_PASSWORD, "bridge": bridge_config},
    }


def make_tenant(session: Session, box: SecretBox, name: str = "contoso", *, bridge: bool = True,
                next_poll_at: datetime | None = None, **settings: Any) -> Tenant:
    """A tenant created by the tenant service; ``settings`` are parts of the definition laid over the
    default one (``log_level="DEBUG"``, ``selection={"login_ids": [...]}``). ``next_poll_at`` is the
    scheduler's state, not configuration, and is set on the stored row."""
    tenant = create_tenant(session, box, deep_merge(tenant_definition(name, bridge), settings))
    if next_poll_at is not None:
        tenant.next_poll_at = next_poll_at
        session.flush()
    return tenant


def tenant_row(session: Session, box: SecretBox, name: str = "contoso", **columns: Any) -> Tenant:
    """A bare tenant row (no rules, no health) written around the service, for tests of the models and
    the database constraints behind the schema; keyword arguments set any column."""
    columns.setdefault("bridge_instance", "TeamsConnectBridge")
    tenant = Tenant(name=name, ms_directory_id="11111111-1111-1111-1111-111111111111",
                    ms_client_id="22222222-2222-2222-2222-222222222222",
                    starface_base_url="https://pbx.contoso.example", starface_login_id="0001", **columns)
    set_secrets(tenant, box, ms_client_secret=CLIENT_SECRET, starface_password=STARFACE_PASSWORD,
                bridge_secret=BRIDGE_SECRET if tenant.bridge_instance else None)
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
