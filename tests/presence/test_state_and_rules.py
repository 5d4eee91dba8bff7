"""Rule-table rows, categorisation, and the JSON the DB layer stores (round trips and clear errors)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence import (
    BUSY_IN_A_CALL,
    DEFAULT_RULES,
    DND_PRESENTING,
    Category,
    DndAction,
    PolicyError,
    StarfaceApplied,
    StarfacePlan,
    StateError,
    TeamsApplied,
    TeamsPresenceMode,
    TenantPolicy,
    categorize,
    is_older,
)

# One row per Graph pair of graph-api.md section 1, plus casing and unknown values.
CATEGORY_TABLE = [
    ("Busy", "InACall", False, Category.IN_A_CALL),
    ("Busy", "InAConferenceCall", False, Category.IN_A_CALL),
    ("Busy", "InACall", True, Category.IN_A_CALL),
    ("DoNotDisturb", "Presenting", False, Category.PRESENTING),
    ("Busy", "InAMeeting", False, Category.IN_A_MEETING),
    ("DoNotDisturb", "DoNotDisturb", False, Category.DO_NOT_DISTURB),
    ("DoNotDisturb", "UrgentInterruptionsOnly", False, Category.DO_NOT_DISTURB),
    ("focusing", "focusing", False, Category.DO_NOT_DISTURB),
    ("Busy", "Busy", False, Category.BUSY),
    ("BusyIdle", "Busy", False, Category.BUSY),
    ("Away", "Away", False, Category.AWAY),
    ("BeRightBack", "BeRightBack", False, Category.BE_RIGHT_BACK),
    ("Available", "OutOfOffice", False, Category.OUT_OF_OFFICE),
    ("Away", "Away", True, Category.OUT_OF_OFFICE),
    ("Offline", "OffWork", True, Category.OUT_OF_OFFICE),
    ("Available", "Available", False, Category.AVAILABLE),
    ("AvailableIdle", "Available", False, Category.AVAILABLE),
    ("Available", "AvailableInactive", False, Category.AVAILABLE),
    ("Offline", "OffWork", False, Category.OFFLINE),
    ("PresenceUnknown", "PresenceUnknown", False, Category.OFFLINE),
    ("SomethingNew", "", False, Category.OFFLINE),
    ("busy", "inACall", False, Category.IN_A_CALL),  # camelCase from the metadata
    ("BUSY", "INAMEETING", False, Category.IN_A_MEETING),
]


@pytest.mark.parametrize(("availability", "activity", "out_of_office", "expected"), CATEGORY_TABLE)
def test_it_categorizes_graph_presence(availability, activity, out_of_office, expected) -> None:
    assert categorize(availability, activity, out_of_office) is expected


def test_it_has_a_default_rule_for_every_category_as_the_issue_lists() -> None:
    assert set(DEFAULT_RULES) == set(Category)
    assert [c for c, r in DEFAULT_RULES.items() if r.dnd is DndAction.SET] == [
        Category.IN_A_CALL, Category.PRESENTING, Category.IN_A_MEETING, Category.DO_NOT_DISTURB,
    ]
    assert DEFAULT_RULES[Category.OUT_OF_OFFICE].chat_text == "Out of office"
    assert DEFAULT_RULES[Category.AVAILABLE].dnd is DndAction.CLEAR
    assert DEFAULT_RULES[Category.AWAY].chat_text is None


def test_it_compares_sequence_numbers_as_strings_and_falls_back_to_time() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_older("A0129311062", t + timedelta(hours=1), "A0129311063", t)
    assert not is_older("A0129311063", t, "A0129311063", t + timedelta(hours=1))
    assert is_older(None, t, "A0129311063", t + timedelta(seconds=1))
    assert not is_older(None, t, None, None)


times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
stamps = st.one_of(st.none(), st.text("0123456789A", min_size=1, max_size=12))
pairs = st.sampled_from([None, BUSY_IN_A_CALL, DND_PRESENTING])


@settings(max_examples=100)
@given(
    st.builds(
        StarfaceApplied,
        dnd_ours=st.booleans(), dnd_manual=st.booleans(), dnd_user_off=st.booleans(),
        chat_text=st.one_of(st.none(), st.text(max_size=40)), telephony_active=st.booleans(),
        category=st.one_of(st.none(), st.sampled_from(Category)), sequence_number=stamps,
        observed_at=st.one_of(st.none(), times), dnd_event_at=st.one_of(st.none(), times),
    )
)
def test_it_round_trips_the_starface_applied_state(applied: StarfaceApplied) -> None:
    assert StarfaceApplied.from_json(applied.to_json()) == applied


@settings(max_examples=100)
@given(
    st.builds(
        TeamsApplied,
        call_active=st.booleans(), telephony_event_at=st.one_of(st.none(), times), held=pairs,
        held_since=st.one_of(st.none(), times), refreshed_at=st.one_of(st.none(), times),
        expires_at=st.one_of(st.none(), times), released=pairs, released_at=st.one_of(st.none(), times),
    )
)
def test_it_round_trips_the_teams_applied_state(applied: TeamsApplied) -> None:
    assert TeamsApplied.from_json(applied.to_json()) == applied


@settings(max_examples=100)
@given(
    st.builds(
        StarfacePlan,
        category=st.one_of(st.none(), st.sampled_from(Category)), dnd=st.sampled_from(DndAction),
        chat_text=st.one_of(st.none(), st.text(max_size=40)),
        telephony_active=st.one_of(st.none(), st.booleans()), sequence_number=stamps,
        observed_at=st.one_of(st.none(), times),
    )
)
def test_it_round_trips_a_plan_as_task_arguments(plan: StarfacePlan) -> None:
    assert StarfacePlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_it_round_trips_a_policy_and_fills_defaults() -> None:
    policy = TenantPolicy(
        set_telephony=True, teams_presence_mode=TeamsPresenceMode.DND_PRESENTING, has_bridge=True,
        rules={**DEFAULT_RULES, Category.BUSY: DEFAULT_RULES[Category.IN_A_CALL]},
    )
    assert TenantPolicy.from_json(policy.to_json()) == policy
    assert TenantPolicy.from_json({}) == TenantPolicy()


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"rules": {"Lunch": {"dnd": "set"}}}, "rules"),
        ({"rules": {"Busy": {"dnd": "toggle"}}}, "rules.Busy.dnd"),
        ({"rules": {"Busy": {"dnd": "set", "chat_text": "  "}}}, "rules.Busy.chat_text"),
        ({"teams_leads": "yes"}, "teams_leads"),
        ({"teams_presence_mode": "ringing"}, "teams_presence_mode"),
    ],
)
def test_it_rejects_a_bad_policy_naming_the_field(data, names) -> None:
    with pytest.raises(PolicyError, match=names):
        TenantPolicy.from_json(data)


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"observed_at": "2026-01-01T00:00:00"}, "observed_at"),
        ({"category": "Lunch"}, "category"),
        ({"dnd_ours": 1}, "dnd_ours"),
    ],
)
def test_it_rejects_a_bad_stored_state_naming_the_field(data, names) -> None:
    with pytest.raises(StateError, match=names):
        StarfaceApplied.from_json(data)
    with pytest.raises(StateError, match="held"):
        TeamsApplied.from_json({"held": ["Away", "Away"]})
