"""Secrets are encrypted at rest, rotate to a new key, and never appear in raw columns or reprs."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from models.crypto import SecretBox, SecretBoxError, generate_key
from models.secrets import read_secrets, rotate_all
from models.tenant import Tenant
from tests.support.factories import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD, make_tenant

PLAINTEXTS = (CLIENT_SECRET, STARFACE_PASSWORD, BRIDGE_SECRET)


def _raw_rows(session: Session) -> str:
    rows = session.execute(text("SELECT * FROM tenant")).all()
    return repr(rows)


def test_it_stores_no_plaintext_in_any_column(sessions: sessionmaker[Session], box: SecretBox) -> None:
    with sessions.begin() as session:
        make_tenant(session, box)
    with sessions() as session:
        raw = _raw_rows(session)
    assert "contoso" in raw  # the query did read the row
    for secret in PLAINTEXTS:
        assert secret not in raw


def test_it_decrypts_what_it_stored(sessions: sessionmaker[Session], box: SecretBox) -> None:
    with sessions.begin() as session:
        make_tenant(session, box)
    with sessions() as session:
        tenant = session.query(Tenant).one()
        secrets = read_secrets(tenant, box)
    assert (secrets.ms_client_secret, secrets.starface_password, secrets.bridge_secret) == PLAINTEXTS
    assert all(secret not in repr(secrets) for secret in PLAINTEXTS)


def test_it_rotates_every_secret_to_the_newest_key(sessions: sessionmaker[Session]) -> None:
    old_key, new_key = generate_key(), generate_key()
    old_box = SecretBox([old_key])
    with sessions.begin() as session:
        make_tenant(session, old_box, name="a")
        make_tenant(session, old_box, name="b", bridge=False)

    rotating_box = SecretBox([new_key, old_key])  # new first: encrypts; old still decrypts
    with sessions.begin() as session:
        assert rotate_all(session, rotating_box) == 5

    new_only = SecretBox([new_key])
    with sessions() as session:
        tenants = session.query(Tenant).order_by(Tenant.name).all()
        assert read_secrets(tenants[0], new_only).bridge_secret == BRIDGE_SECRET
        assert read_secrets(tenants[1], new_only).ms_client_secret == CLIENT_SECRET
        assert read_secrets(tenants[1], new_only).bridge_secret is None
        with pytest.raises(SecretBoxError, match="cannot be decrypted with any configured key"):
            read_secrets(tenants[0], old_box)


def test_it_explains_a_removed_key_without_showing_secrets(box: SecretBox) -> None:
    ciphertext = box.encrypt(CLIENT_SECRET)
    with pytest.raises(SecretBoxError) as raised:
        SecretBox([generate_key()]).decrypt(ciphertext)
    assert "teamsconnect keys rotate" in str(raised.value)
    assert CLIENT_SECRET not in str(raised.value)
