"""Issue 11, "behave as the STARFACE module our users know", at the tenant layer: the module's defaults,
log levels, instance names with slugs, group names, Teams status names, chat symbols, secret expiry."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.crypto import SecretBox
from presence.policy import TeamsPresenceMode
from tenants.policy import policy_for
from tenants.schema import Options, TenantConfigError, validate_config
from tenants.service import create_tenant, update_tenant
from tests.cli.conftest import TENANT


def _config(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(TENANT)
    data.update(changes)
    return data


def test_it_defaults_to_the_modules_behaviour(sessions: sessionmaker[Session], box: SecretBox) -> None:
    assert Options().teams_presence_mode is TeamsPresenceMode.DND_PRESENTING
    assert Options().respect_manual_dnd is False
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, _config())
        policy = policy_for(tenant)
    assert policy.teams_presence_mode is TeamsPresenceMode.DND_PRESENTING and not policy.respect_manual_dnd


def test_it_reads_the_old_teams_leads_option_inverted() -> None:
    config = validate_config(_config(options={"teams_leads": False}))
    assert config.options.respect_manual_dnd is True
    with pytest.raises(TenantConfigError, match=r"options: teams_leads: must be true or false"):
        validate_config(_config(options={"teams_leads": "maybe"}))


@pytest.mark.parametrize(("given", "stored"), [
    ("ERROR", "ERROR"), ("warn", "WARN"), ("WARNING", "WARN"), ("Info", "INFO"), ("DEBUG", "DEBUG"),
    ("trace", "TRACE"),
])
def test_it_takes_the_modules_log_levels(given: str, stored: str) -> None:
    assert validate_config(_config(log_level=given)).log_level == stored


def test_it_names_the_modules_log_levels_for_an_unknown_one(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with pytest.raises(TenantConfigError, match=r"log_level: must be one of ERROR, WARN, INFO, DEBUG, TRACE"):
        validate_config(_config(log_level="VERBOSE"))
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, _config())
        assert update_tenant(session, box, tenant, {"log_level": "trace"}) == ["log_level"]
        assert tenant.log_level == "TRACE"


@pytest.mark.parametrize(("name", "slug"), [
    ("TeamsConnect Vertrieb", "teamsconnect-vertrieb"), ("Büro Köln", "buero-koeln"),
    ("  Straße  &  Söhne (Nord) ", "strasse-soehne-nord"), ("東京", "tenant"), ("2024", None),
    ("contoso-pbx1", "contoso-pbx1"),
])
def test_it_takes_instance_names_as_the_module_does(name: str, slug: str | None) -> None:
    from tenants.naming import slugify

    if slug is None:
        with pytest.raises(TenantConfigError, match=r"name: must not be all digits"):
            validate_config(_config(name=name))
        assert slugify(name) == "t-2024"
        return
    config = validate_config(_config(name=name))
    assert config.name == " ".join(name.split()) and slugify(config.name) == slug


@pytest.mark.parametrize(("name", "problem"), [
    ("", "must be 1..100 characters"), ("a\tb", "not '\\t'"), ("---", "must contain a letter or digit"),
    ("x" * 101, "must be 1..100 characters"),
])
def test_it_names_what_is_wrong_with_an_instance_name(name: str, problem: str) -> None:
    with pytest.raises(TenantConfigError) as caught:
        validate_config(_config(name=name))
    assert caught.value.problems[0][0] == "name" and problem in caught.value.problems[0][1]


def test_it_keeps_names_unique_and_slugs_stable(sessions: sessionmaker[Session], box: SecretBox) -> None:
    from tenants.service import find_tenant

    with sessions() as session, session.begin():
        koeln = create_tenant(session, box, _config(name="Büro Köln"))
        other = create_tenant(session, box, _config(name="Büro  Koeln"))  # a different name, the same slug
        assert (koeln.slug, other.slug) == ("buero-koeln", "buero-koeln-2")
        with pytest.raises(TenantConfigError, match=r"name: a tenant named 'Büro Köln' exists already"):
            create_tenant(session, box, _config(name="büro köln"))
        assert update_tenant(session, box, koeln, {"name": "Büro Köln-Deutz"}) == ["name"]
        assert koeln.slug == "buero-koeln"  # stable: URLs and scripts keep working
        for ref in ("buero-koeln", "Büro Köln-Deutz", "BÜRO KÖLN-DEUTZ", str(koeln.id)):
            assert find_tenant(session, ref) is koeln
        with pytest.raises(TenantConfigError, match=r"slug: another tenant has the slug 'buero-koeln-2'"):
            update_tenant(session, box, koeln, {"slug": "buero-koeln-2"})
        assert update_tenant(session, box, koeln, {"slug": "deutz"}) == ["slug"]
        with pytest.raises(TenantConfigError, match=r"slug: must be 1..60 lower-case letters"):
            update_tenant(session, box, koeln, {"slug": "Deutz!"})



@pytest.mark.parametrize(("name", "category"), [
    ("Beschäftigt - Am Telefon", "InACall"), ("Beschäftigt – Am Telefon", "InACall"),
    ("busy - in a call", "InACall"), ("Nicht stören", "DoNotDisturb"),
    ("Do not disturb - Presenting", "Presenting"),
    ("Bin gleich zurück", "BeRightBack"), ("Nicht im Büro", "OutOfOffice"), ("in_a_meeting", "InAMeeting"),
    ("Verfügbar", "Available"), ("Offline", "Offline"),
])
def test_it_takes_teams_statuses_by_the_names_teams_users_see(name: str, category: str) -> None:
    config = validate_config(_config(rules={name: {"dnd": "leave"}}))
    assert [c.value for c in config.rules] == [category]


def test_it_sets_chat_symbols_per_status_with_module_defaults(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    from presence.categories import Category
    from presence.policy import ChatSymbol

    rules = {"Abwesend": {"dnd": "leave", "chat_symbol": "extended away"},
             "InACall": {"dnd": "set", "chat_text": "Am Telefon"},  # no symbol given: the default
             "Presenting": {"dnd": "set", "chat_symbol": None}}  # null: keep
    with sessions() as session, session.begin():
        tenant = create_tenant(session, box, _config(rules=rules))
        policy = policy_for(tenant)
        assert policy.rules[Category.AWAY].chat_symbol is ChatSymbol.EXTENDED_AWAY
        assert policy.rules[Category.IN_A_CALL].chat_symbol is ChatSymbol.DO_NOT_DISTURB
        assert policy.rules[Category.PRESENTING].chat_symbol is None
        assert policy.rules[Category.DO_NOT_DISTURB].chat_symbol is ChatSymbol.DO_NOT_DISTURB
        assert policy.rules[Category.BUSY].chat_symbol is None
        update_tenant(session, box, tenant, {"options.set_dnd": False})  # other changes keep the symbols
        assert policy_for(tenant).rules == policy.rules
    with pytest.raises(TenantConfigError, match=r"rules.Away.chat_symbol: must be one of AVAILABLE, AWAY, "
                                                r"DO_NOT_DISTURB, EXTENDED_AWAY or keep"):
        validate_config(_config(rules={"Away": {"dnd": "leave", "chat_symbol": "GREEN"}}))



def test_it_explains_aadsts50076_with_the_entra_settings_and_the_addresses_to_trust() -> None:
    from connectors.graph import GraphAuthError
    from tenants.diagnostics import with_egress

    error = GraphAuthError.from_token_error(
        "invalid_grant", [50076], "AADSTS50076: Due to a configuration change made by your administrator, "
        "or because you moved to a new location, you must use multi-factor authentication")
    text = with_egress(str(error), ["203.0.113.10", "198.51.100.0/28"])
    for words in ("Protection > Conditional Access > Policies", "Users or workload identities",
                  "Workload identities > Exclude > Select service principals", "Named locations",
                  "Mark as trusted location", "The service connects from: 203.0.113.10, 198.51.100.0/28."):
        assert words in text, words
    assert "TEAMSCONNECT_EGRESS_IPS" in with_egress(str(error), [])
    assert with_egress("AADSTS7000215: bad secret", ["203.0.113.10"]) == "AADSTS7000215: bad secret"



def test_it_warns_about_an_implausible_secret_expiry_date() -> None:
    from datetime import UTC, datetime, timedelta

    from tenants.summary import implausible_secret_expiry

    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert implausible_secret_expiry(None, now) is None
    assert implausible_secret_expiry(now + timedelta(days=730), now) is None  # 24 months: Entra's maximum
    ahead = implausible_secret_expiry(datetime(2099, 1, 1, tzinfo=UTC), now)
    assert ahead and "2099-01-01 is more than two years ahead" in ahead and "at most 24 months" in ahead
    past = implausible_secret_expiry(now - timedelta(days=1), now)
    assert past and "2026-11-30 is in the past" in past and "AADSTS7000222" in past
