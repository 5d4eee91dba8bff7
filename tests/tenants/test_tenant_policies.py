"""The polls' kept tenants (sync/tenant_policies.py): loaded again after any change of a tenant's stored
configuration, whoever makes it, and only then."""

from __future__ import annotations

import copy

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    TypeDecorator,
    literal_column,
    not_,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from models import StatusRule, Tenant
from models.crypto import SecretBox
from models.secrets import rotate_all
from presence.categories import Category
from sync.tenant_policies import TenantPolicies
from tenants.service import SCHEDULER_COLUMNS, create_tenant, load_tenant_policies, update_tenant
from tests.cli.conftest import TENANT
from tests.support.query_counter import count_queries


def _new_tenant(sessions: sessionmaker[Session], box: SecretBox, name: str | None = None) -> int:
    definition = copy.deepcopy(TENANT)
    if name is not None:
        definition["name"] = name
        definition.pop("slug", None)
    with sessions() as session, session.begin():
        return create_tenant(session, box, definition).id


ONE_SECOND = literal_column("interval '1 second'")
#: Columns whose values a CHECK constraint names: another allowed one (TENANT holds the first).
CHOICES = {"teams_presence_mode": "busy_in_a_call", "selection_mode": "all_except_listed",
           "ms_app": "provider"}


def _other_value(column: Column) -> object:  # type: ignore[type-arg]
    """A SQL expression giving the column a value different from the one it holds."""
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    if column.name in CHOICES:
        return CHOICES[column.name]
    if isinstance(kind, Boolean):
        return not_(column)
    if isinstance(kind, Integer | Float):
        return column + 1
    if isinstance(kind, DateTime):
        return column + ONE_SECOND
    if isinstance(kind, String | Text):
        return column + "x"
    raise AssertionError(f"no other value for {column.name} ({kind!r})")


def test_every_configuration_column_and_rule_changes_the_fingerprint_and_the_scheduler_does_not(
    pg_sessions: sessionmaker[Session], box: SecretBox,
) -> None:
    tenant_id = _new_tenant(pg_sessions, box)
    kept = TenantPolicies()
    # (enabled: a disabled tenant is not polled at all, in the next test)
    columns = [c for c in Tenant.__table__.columns if c.name not in SCHEDULER_COLUMNS | {"id", "enabled"}]
    assert len(columns) >= 30  # the whole row, not a hand-picked list
    for column in columns:
        with pg_sessions() as session, session.begin():
            before = kept.load(session, [tenant_id])[tenant_id][0]
            if column.name == "login_ids":  # a JSON document
                value: object = ["another-login"]
            elif getattr(before, column.key) is None:
                value = before.created_at if column.name.endswith("_at") else {"starface_group_id": 7}.get(
                    column.key, "set now")
            else:
                value = _other_value(column)
            session.execute(update(Tenant).where(Tenant.id == tenant_id).values({column.key: value}))
        with pg_sessions() as session, session.begin():
            with count_queries(session.get_bind()) as counted:
                after = kept.load(session, [tenant_id])[tenant_id][0]
            assert counted.count == 3, f"{column.name}: the tenant was not loaded again"
            assert getattr(after, column.key) != getattr(before, column.key), column.name
    with pg_sessions() as session, session.begin():
        busy = (StatusRule.tenant_id == tenant_id) & (StatusRule.category == Category.BUSY.value)
        changed = session.execute(update(StatusRule).where(busy).values(chat_text="Busy, back soon"))
        assert changed.rowcount == 1
    with pg_sessions() as session, session.begin():
        policy = kept.load(session, [tenant_id])[tenant_id][1]
    assert policy.rules[Category.BUSY].chat_text == "Busy, back soon"
    # The scheduler claims the tenant every cycle: that is no change of its configuration.
    with pg_sessions() as session, session.begin():
        session.execute(update(Tenant).where(Tenant.id == tenant_id)
                        .values(next_poll_at=Tenant.next_poll_at + ONE_SECOND))
    with pg_sessions() as session, session.begin(), count_queries(session.get_bind()) as counted:
        kept.load(session, [tenant_id])
    assert counted.count == 1


def test_changes_through_the_service_and_key_rotation_reach_the_next_poll(
    pg_sessions: sessionmaker[Session], box: SecretBox,
) -> None:
    tenant_id = _new_tenant(pg_sessions, box)
    kept = TenantPolicies()

    def loaded() -> tuple[Tenant, object]:
        with pg_sessions() as session, session.begin():
            return kept.load(session, [tenant_id])[tenant_id]

    def fresh() -> tuple[Tenant, object]:
        with pg_sessions() as session, session.begin():
            return load_tenant_policies(session, [tenant_id])[tenant_id]

    def change(changes: dict[str, object]) -> None:
        with pg_sessions() as session, session.begin():
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            update_tenant(session, box, tenant, changes)

    loaded()
    change({"rules": {"Busy": {"dnd": "leave"}}})
    assert loaded()[1] == fresh()[1]
    change({"options": {"set_chat_text": False}})
    assert loaded()[1] == fresh()[1]
    assert loaded()[1].set_chat_text is False  # type: ignore[attr-defined]
    before = loaded()[0].starface_password_encrypted
    with pg_sessions() as session, session.begin():
        rotate_all(session, box)
    assert loaded()[0].starface_password_encrypted == fresh()[0].starface_password_encrypted != before
    change({"enabled": False})
    with pg_sessions() as session, session.begin():
        assert kept.load(session, [tenant_id]) == {}  # a disabled tenant is not polled


def test_the_kept_tenants_stay_within_their_bound(pg_sessions: sessionmaker[Session], box: SecretBox) -> None:
    ids = [_new_tenant(pg_sessions, box, name) for name in ("first", "second", "third")]
    kept = TenantPolicies(max_tenants=2)

    def statements(tenant_ids: list[int]) -> int:
        with pg_sessions() as session, session.begin(), count_queries(session.get_bind()) as counted:
            assert set(kept.load(session, tenant_ids)) == set(tenant_ids)
        return counted.count

    assert statements(ids[:2]) == 3  # both loaded
    with pg_sessions() as session, session.begin():
        tenant = session.get(Tenant, ids[0])
        assert tenant is not None
        update_tenant(session, box, tenant, {"description": "changed"})
    # A changed tenant loaded again replaces its own entry: no new room taken, the other stays kept.
    assert statements(ids[:2]) == 3
    assert statements([ids[1]]) == 1
    # A third tenant overflows the bound: the process starts again from empty, with just what it loaded.
    assert statements([ids[2]]) == 3
    assert statements([ids[2]]) == 1
    assert statements([ids[1]]) == 3
