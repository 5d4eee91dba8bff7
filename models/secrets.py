"""Reading, writing and re-encrypting a tenant's secrets; the only place that touches ``*_encrypted``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from models.crypto import SecretBox
from models.tenant import Tenant

ENCRYPTED_COLUMNS = ("ms_client_secret_encrypted", "starface_password_encrypted", "bridge_secret_encrypted")


@dataclass(frozen=True)
class TenantSecrets:
    """A tenant's decrypted secrets, for a connector about to be built. Never logged (repr hides them)."""

    ms_client_secret: str | None  # None: the tenant uses the provider app and has no secret of its own
    starface_password: str
    bridge_secret: str | None

    def __repr__(self) -> str:
        return "TenantSecrets(***)"


def set_secrets(
    tenant: Tenant,
    box: SecretBox,
    *,
    ms_client_secret: str | None = None,
    starface_password: str | None = None,
    bridge_secret: str | None = None,
    clear_bridge_secret: bool = False,
) -> None:
    """Encrypts and stores the given secrets on ``tenant`` (those left None are unchanged)."""
    if ms_client_secret is not None:
        tenant.ms_client_secret_encrypted = box.encrypt(ms_client_secret)
    if starface_password is not None:
        tenant.starface_password_encrypted = box.encrypt(starface_password)
    if bridge_secret is not None:
        tenant.bridge_secret_encrypted = box.encrypt(bridge_secret)
    elif clear_bridge_secret:
        tenant.bridge_secret_encrypted = None


def read_secrets(tenant: Tenant, box: SecretBox) -> TenantSecrets:
    """Decrypts a tenant's secrets."""
    bridge = tenant.bridge_secret_encrypted
    client_secret = tenant.ms_client_secret_encrypted
    return TenantSecrets(
        ms_client_secret=box.decrypt(client_secret) if client_secret else None,
        starface_password=box.decrypt(tenant.starface_password_encrypted),
        bridge_secret=box.decrypt(bridge) if bridge else None,
    )


#: What a webhook needs of its tenant, built once: building the statement per event cost more CPU than
#: running it (bench/webhook.py).
_BRIDGE_SECRET = select(Tenant.enabled, Tenant.bridge_secret_encrypted).where(
    Tenant.id == bindparam("tenant_id"), Tenant.has_bridge)


def read_bridge_secret(connection: Connection, tenant_id: int, box: SecretBox) -> tuple[bool, str] | None:
    """(enabled, bridge secret) of a tenant with a bridge, or None: two columns on a plain connection, only
    the bridge secret decrypted (not the tenant as an ORM object with all three secrets, per event)."""
    row = connection.execute(_BRIDGE_SECRET, {"tenant_id": tenant_id}).one_or_none()
    if row is None:
        return None
    enabled, ciphertext = row
    return bool(enabled), box.decrypt(ciphertext)


def rotate_all(session: Session, box: SecretBox) -> int:
    """Re-encrypts every stored secret of every tenant under the newest key; returns how many."""
    count = 0
    for tenant in session.scalars(select(Tenant)):
        for column in ENCRYPTED_COLUMNS:
            ciphertext = getattr(tenant, column)
            if ciphertext:
                setattr(tenant, column, box.rotate(ciphertext))
                count += 1
    return count
