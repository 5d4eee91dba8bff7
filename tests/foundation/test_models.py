"""The models hold what the product needs and refuse what would corrupt it, on both databases.

Rows are written around the tenant service here (`tenant_row`): the database's constraints are the last
line behind the schema's validation and must hold on their own."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models import AppliedState, ChangeLog, StatusRule, Tenant, TenantHealth, UserLink
from models.crypto import SecretBox
from presence.linking import LinkState
from tests.support.factories import make_user_links, tenant_row


def test_it_stores_a_tenant_with_rules_health_and_defaults(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with sessions.begin() as session:
        tenant = tenant_row(session, box, login_ids=["1001", "1002"])
        tenant.rules.append(StatusRule(category="InACall", dnd_action="set", chat_text="On a call"))
        tenant.health = TenantHealth(polls_ok=3)
    with sessions() as session:
        stored = session.scalars(select(Tenant)).one()
        assert stored.login_ids == ["1001", "1002"]
        assert stored.poll_interval_s == 1.0  # issue 14: a floor, stretched to the Graph budget
        assert stored.teams_presence_mode == "dnd_presenting"  # issue 11: the module sets "Nicht stören"
        assert stored.selection_mode == "all_except_listed"
        assert stored.next_poll_at.tzinfo is not None
        assert stored.has_bridge
        assert [(r.category, r.dnd_action, r.chat_text) for r in stored.rules] == [
            ("InACall", "set", "On a call")
        ]
        assert stored.health is not None and stored.health.polls_ok == 3


def test_it_refuses_a_duplicate_tenant_name(sessions: sessionmaker[Session], box: SecretBox) -> None:
    with sessions.begin() as session:
        tenant_row(session, box, name="dup")
    with pytest.raises(IntegrityError), sessions.begin() as session:
        tenant_row(session, box, name="dup")


@pytest.mark.parametrize(
    ("column", "value"),
    [("teams_presence_mode", "loud"), ("selection_mode", "random"), ("poll_interval_s", 0.0)],
)
def test_it_refuses_invalid_tenant_options(
    sessions: sessionmaker[Session], box: SecretBox, column: str, value: object
) -> None:
    with pytest.raises(IntegrityError), sessions.begin() as session:
        tenant_row(session, box, **{column: value})


def test_it_refuses_an_unknown_dnd_action(sessions: sessionmaker[Session], box: SecretBox) -> None:
    with pytest.raises(IntegrityError), sessions.begin() as session:
        tenant = tenant_row(session, box)
        session.add(StatusRule(tenant_id=tenant.id, category="Busy", dnd_action="toggle"))


def test_it_refuses_two_applied_states_for_one_user_and_target(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with sessions.begin() as session:
        tenant = tenant_row(session, box)
        (link,) = make_user_links(session, tenant, 1)
        session.add(AppliedState(tenant_id=tenant.id, user_link_id=link.id, target="starface"))
        session.add(AppliedState(tenant_id=tenant.id, user_link_id=link.id, target="teams"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(AppliedState(tenant_id=tenant.id, user_link_id=link.id, target="starface"))


def test_it_keeps_link_states_with_reasons_and_one_link_per_account(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with sessions.begin() as session:
        tenant = tenant_row(session, box)
        session.add(UserLink(tenant_id=tenant.id, starface_account_id=5, login_id="1005",
                             state=LinkState.DUPLICATE_EMAIL.value,
                             reason="a@x.example is used by 1005, 1006"))
    with sessions() as session:
        link = session.scalars(select(UserLink)).one()
        assert (link.state, link.reason) == ("duplicate_email", "a@x.example is used by 1005, 1006")
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(UserLink(tenant_id=tenant.id, starface_account_id=5, login_id="other"))


def test_it_deletes_a_tenants_rows_with_it(sessions: sessionmaker[Session], box: SecretBox) -> None:
    with sessions.begin() as session:
        tenant = tenant_row(session, box)
        (link,) = make_user_links(session, tenant, 1)
        session.add(AppliedState(tenant_id=tenant.id, user_link_id=link.id, target="starface"))
        session.add(ChangeLog(tenant_id=tenant.id, user_link_id=link.id, target="starface", cause="test"))
    with sessions.begin() as session:
        session.delete(session.get(Tenant, tenant.id))
    with sessions() as session:
        for model in (UserLink, AppliedState, ChangeLog):
            assert session.scalars(select(model)).all() == []
