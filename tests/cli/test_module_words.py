"""Issue 11, "Done when": `teamsconnect tenant add` takes a file written with the STARFACE module's words
(instance name with spaces and umlauts, log level TRACE, a group by name, Teams statuses by the names Teams
users see) and `tenant show` prints them back the same way. The group is looked up on the STARFACE
simulator over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Tenant
from simulators.microsoft import MicrosoftSimulator
from simulators.microsoft import make_seed as microsoft_seed
from simulators.starface import StarfaceSimulator
from simulators.starface import make_seed as starface_seed
from tests.cli.conftest import BRIDGE_SECRET, CLIENT_SECRET, STARFACE_PASSWORD, assert_no_secret

Run = Callable[..., Result]


@pytest.fixture
def microsoft() -> Iterator[tuple[MicrosoftSimulator, dict[str, Any]]]:
    seed = microsoft_seed(n_users=2, tenants=("contoso",), secret=CLIENT_SECRET)
    with MicrosoftSimulator(seed) as sim:
        yield sim, seed["tenants"][0]


@pytest.fixture
def pbx() -> Iterator[StarfaceSimulator]:
    """Groups as a customer has them: 'Vertrieb Köln', and two groups both called 'Technik'."""
    seed = starface_seed(4, admin_login="0001", admin_password=STARFACE_PASSWORD, bridge_secret=BRIDGE_SECRET)
    seed["groups"] += [
        {"id": 8, "name": "Vertrieb Köln", "members": [100, 101], "internalNumber": "21"},
        {"id": 9, "name": "Technik", "members": [102], "internalNumber": "22"},
        {"id": 10, "name": "Technik", "members": [103], "internalNumber": "23"},
    ]
    with StarfaceSimulator(seed) as sim:
        yield sim


@pytest.fixture
def module_file(
    microsoft: tuple[MicrosoftSimulator, dict[str, Any]], pbx: StarfaceSimulator, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A tenant definition in the module's words, pointing at both simulators."""
    sim, seed_tenant = microsoft
    monkeypatch.setenv("TEAMSCONNECT_CA_BUNDLE", sim.ca_path)
    return {
        "name": "TeamsConnect Vertrieb Köln",
        "log_level": "TRACE",
        "rules": {
            "Beschäftigt – Am Telefon": {"dnd": "set", "chat_text": "Im Teams-Gespräch",
                                         "chat_symbol": "DO_NOT_DISTURB"},
            "Busy - In a meeting": {"dnd": "set", "chat_text": "In einer Teams-Besprechung",
                                    "chat_symbol": "away"},
            "Abwesend": {"dnd": "leave", "chat_symbol": "EXTENDED_AWAY"},
            "Verfügbar": {"dnd": "clear", "chat_text": None, "chat_symbol": "keep"},
        },
        "selection": {"mode": "group_plus_listed", "starface_group": "vertrieb köln", "login_ids": ["1103"]},
        "microsoft": {
            "directory_id": seed_tenant["domain"],
            "client_id": seed_tenant["apps"][0]["clientId"],
            "client_secret": CLIENT_SECRET,
            "login_base_url": sim.base_url,
            "graph_base_url": sim.base_url,
        },
        "starface": {"base_url": pbx.base_url, "login_id": "0001", "password": STARFACE_PASSWORD,
                     "bridge": {"secret": BRIDGE_SECRET}},
    }


def _write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_it_resolves_a_group_name_on_the_pbx_and_shows_it(
    run: Run, tmp_path: Path, module_file: dict[str, Any], db: sessionmaker[Session],
) -> None:
    added = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert added.exit_code == 0, added.output
    assert "added tenant TeamsConnect Vertrieb Köln (slug teamsconnect-vertrieb-koeln" in added.stdout
    with db() as session:
        tenant = session.scalars(select(Tenant)).one()
        assert (tenant.starface_group_id, tenant.starface_group_name, tenant.log_level) == (
            8, "Vertrieb Köln", "TRACE")
    shown = run("tenant", "show", "teamsconnect-vertrieb-koeln")
    assert shown.exit_code == 0, shown.output
    assert "Tenant TeamsConnect Vertrieb Köln (slug teamsconnect-vertrieb-koeln" in shown.stdout
    assert "starface_group: Vertrieb Köln" in shown.stdout and "log_level: TRACE" in shown.stdout
    for line in (
        "Busy - In a call / Beschäftigt - Am Telefon (InACall): dnd=set, text=Im Teams-Gespräch, "
        "symbol=DO_NOT_DISTURB",
        "Busy - In a meeting / Beschäftigt - In einer Besprechung (InAMeeting): dnd=set, "
        "text=In einer Teams-Besprechung, symbol=AWAY",
        "Away / Abwesend (Away): dnd=leave, text=-, symbol=EXTENDED_AWAY",
        "Available / Verfügbar (Available): dnd=clear, text=-, symbol=keep",
        "Do not disturb - Presenting / Nicht stören - Präsentieren (Presenting): dnd=set, "
        "text=Presenting in MS Teams, symbol=DO_NOT_DISTURB",  # a default row
        "teams_presence_mode: dnd_presenting", "respect_manual_dnd: false",
    ):
        assert line in shown.stdout, line
    table = run("tenant", "rules", "TeamsConnect Vertrieb Köln", "Nicht stören", "--symbol", "keep")
    assert table.exit_code == 0, table.output
    assert "rule Do not disturb / Nicht stören (DoNotDisturb) is now dnd=set, " \
           "text=Do not disturb (MS Teams), symbol=keep" in table.stdout
    assert_no_secret(added.output + shown.output)


def test_it_names_the_groups_there_are_for_an_unknown_or_ambiguous_name(
    run: Run, tmp_path: Path, module_file: dict[str, Any],
) -> None:
    module_file["selection"]["starface_group"] = "Vertrieb Bonn"
    unknown = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert unknown.exit_code == 2
    assert ("error: selection.starface_group: the STARFACE has no group named 'Vertrieb Bonn' (its groups: "
            "Support (id 7), Technik (id 9), Technik (id 10), Vertrieb Köln (id 8))") in unknown.stderr
    module_file["selection"]["starface_group"] = "Technik"
    ambiguous = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert ambiguous.exit_code == 2
    assert "several STARFACE groups are named 'Technik' (ids 9, 10); give the id" in ambiguous.stderr
    module_file["selection"]["starface_group"] = 10
    by_id = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert by_id.exit_code == 0, by_id.output


def test_it_refuses_a_group_name_while_the_pbx_is_unreachable_but_takes_an_id(
    run: Run, tmp_path: Path, module_file: dict[str, Any], db: sessionmaker[Session],
) -> None:
    module_file["starface"]["base_url"] = "http://127.0.0.1:9"  # nothing listens there
    refused = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert refused.exit_code == 2
    assert "error: selection.starface_group: cannot look up the group 'vertrieb köln' on the STARFACE" in (
        refused.stderr)
    assert "or give the group's id (Admin > Groups) instead of its name" in refused.stderr
    assert_no_secret(refused.output)
    module_file["selection"]["starface_group"] = "8"
    taken = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert taken.exit_code == 0, taken.output
    with db() as session:
        assert session.scalars(select(Tenant.starface_group_id)).one() == 8


def test_it_follows_a_renamed_or_recreated_group_at_every_directory_sync(
    run: Run, tmp_path: Path, module_file: dict[str, Any], db: sessionmaker[Session],
) -> None:
    assert run("tenant", "add", "--file", _write(tmp_path, module_file)).exit_code == 0
    with db() as session, session.begin():  # as if the admin deleted the group and created it again
        session.scalars(select(Tenant)).one().starface_group_id = 99
    synced = run("tenant", "sync", "teamsconnect-vertrieb-koeln")
    assert synced.exit_code == 0, synced.output
    with db() as session, session.begin():
        tenant = session.scalars(select(Tenant)).one()
        assert (tenant.starface_group_id, tenant.starface_group_name) == (8, "Vertrieb Köln")
        tenant.starface_group_name = "Vertrieb (alt)"  # renamed on the PBX since the last sync
    assert run("tenant", "sync", "teamsconnect-vertrieb-koeln").exit_code == 0
    with db() as session, session.begin():
        tenant = session.scalars(select(Tenant)).one()
        assert tenant.starface_group_name == "Vertrieb Köln"
        tenant.starface_group_id, tenant.starface_group_name = 99, "Weg"
    gone = run("tenant", "sync", "teamsconnect-vertrieb-koeln")
    assert gone.exit_code == 1
    assert "the STARFACE group 'Weg' (id 99) of tenant teamsconnect-vertrieb-koeln's user selection no " \
           "longer exists; set selection.starface_group to an existing group" in gone.stderr


def test_it_starts_a_directory_sync_when_the_selection_changes(
    run: Run, tmp_path: Path, module_file: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Point 7: a selection change saved through the CLI hands a directory sync to the workers at once
    (TaskQueue port over the suite's real Redis broker); an unreachable broker is reported with what
    happens instead; a change that does not affect the user links starts nothing."""
    import redis

    from tests.conftest import REDIS_URL
    from workers import queues
    from workers.app import configure_broker

    broker_url = REDIS_URL.rsplit("/", 1)[0] + "/11"
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    monkeypatch.setenv("TEAMSCONNECT_BROKER_URL", broker_url)
    try:
        assert run("tenant", "add", "--file", _write(tmp_path, module_file)).exit_code == 0
        changed = run("tenant", "set", "teamsconnect-vertrieb-koeln", "selection.login_ids=1102,1103")
        assert changed.exit_code == 0, changed.output
        assert "started a directory sync of tenant teamsconnect-vertrieb-koeln" in changed.stdout
        assert broker.llen(queues.QUEUE_MAINTENANCE) == 1
        unrelated = run("tenant", "set", "teamsconnect-vertrieb-koeln", "description=Vertrieb West")
        assert "directory sync" not in unrelated.stdout and broker.llen(queues.QUEUE_MAINTENANCE) == 1
        monkeypatch.setenv("TEAMSCONNECT_BROKER_URL", "redis://127.0.0.1:9/0")  # nothing listens there
        down = run("tenant", "set", "teamsconnect-vertrieb-koeln", "selection.starface_group=7")
        assert down.exit_code == 0, down.output
        assert "updated tenant TeamsConnect Vertrieb Köln: selection.starface_group" in down.stdout
        assert "warning: could not start a directory sync now: the broker (TEAMSCONNECT_BROKER_URL) is " \
               "unreachable" in down.stdout
        assert "the 15-minute directory sync will pick it up" in down.stdout
    finally:
        broker.flushdb()
        broker.close()
        configure_broker("memory://")



def test_it_shows_the_service_egress_ips_in_tenant_test_and_show(
    run: Run, tmp_path: Path, module_file: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEAMSCONNECT_EGRESS_IPS", "203.0.113.10,198.51.100.0/28")
    assert run("tenant", "add", "--file", _write(tmp_path, module_file)).exit_code == 0
    tested = run("tenant", "test", "teamsconnect-vertrieb-koeln")
    assert "the service connects to Microsoft and your PBX from: 203.0.113.10, 198.51.100.0/28" in (
        tested.stdout)
    shown = run("tenant", "show", "teamsconnect-vertrieb-koeln")
    assert "egress IPs (trust these in Conditional Access and the PBX firewall): 203.0.113.10, " \
           "198.51.100.0/28" in shown.stdout
    as_json = json.loads(run("tenant", "show", "teamsconnect-vertrieb-koeln", "--json").stdout)
    assert as_json["service_egress_ips"] == ["203.0.113.10", "198.51.100.0/28"]



def test_it_warns_when_a_secret_expiry_date_cannot_be_right(
    run: Run, tmp_path: Path, module_file: dict[str, Any],
) -> None:
    module_file["microsoft"]["secret_expires_at"] = "2099-01-01"
    added = run("tenant", "add", "--file", _write(tmp_path, module_file))
    assert added.exit_code == 0, added.output
    assert "warning: microsoft.secret_expires_at: 2099-01-01 is more than two years ahead" in added.stdout
    past = run("tenant", "set", "teamsconnect-vertrieb-koeln", "microsoft.secret_expires_at=2020-01-31")
    assert past.exit_code == 0, past.output
    assert "warning: microsoft.secret_expires_at: 2020-01-31 is in the past" in past.stdout
    assert "`teamsconnect tenant set teamsconnect-vertrieb-koeln microsoft.client_secret`" in past.stdout


def test_it_looks_a_group_name_up_again_when_the_pbx_address_changes(
    run: Run, tmp_path: Path, module_file: dict[str, Any],
) -> None:
    assert run("tenant", "add", "--file", _write(tmp_path, module_file)).exit_code == 0
    moved = run("tenant", "set", "teamsconnect-vertrieb-koeln", "starface.base_url=http://127.0.0.1:9")
    assert moved.exit_code == 2  # another PBX: the same name may be another group there
    assert "error: selection.starface_group: cannot look up the group 'Vertrieb Köln' on the STARFACE" in (
        moved.stderr)
