"""`decided_without_clock` (issue 14: skip unchanged users): where it says the poll's answer cannot change
with the observation time alone, `plan_starface` gives the same answer however much later the same
presence is observed over the same applied states - the ground the poll's memo (sync/settled.py) stands on.
And where it says no, the time really can change the answer (so the predicate is not just "never")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from presence import (
    BUSY_IN_A_CALL,
    DND_PRESENTING,
    NO_TEAMS_SESSION,
    Category,
    StarfaceApplied,
    StarfacePlan,
    TeamsApplied,
    TeamsObservation,
    TenantPolicy,
    decided_without_clock,
    plan_starface,
)
from tests.presence.model import CLIENT_STATES, PREFERRED_STATES
from tests.presence.test_properties import policies

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
#: Later observations of the same presence: at once, within and past the echo window, a day later.
LATER = [timedelta(0), timedelta(seconds=1), timedelta(minutes=4, seconds=59), timedelta(minutes=5),
         timedelta(minutes=6), timedelta(days=1)]
PAIRS = sorted({*CLIENT_STATES.values(), *PREFERRED_STATES.values(),
                (BUSY_IN_A_CALL.availability, BUSY_IN_A_CALL.activity),
                (DND_PRESENTING.availability, DND_PRESENTING.activity)})
STAMPS = st.one_of(st.none(), st.sampled_from(["A0000000001", "A0000000002", "A0000000003"]))
TIMES = st.one_of(st.none(), st.sampled_from([T0 - timedelta(days=1), T0 - timedelta(minutes=4),
                                               T0 - timedelta(seconds=1), T0, T0 + timedelta(minutes=1)]))
SESSION_PAIRS = st.sampled_from([None, BUSY_IN_A_CALL, DND_PRESENTING])

#: Half of the observations show one of our session pairs: the echo cases.
OBSERVED_PAIRS = st.one_of(
    st.sampled_from([(pair.availability, pair.activity) for pair in (BUSY_IN_A_CALL, DND_PRESENTING)]),
    st.sampled_from(PAIRS))
observations = st.builds(
    lambda pair, out_of_office, stamp: TeamsObservation(pair[0], pair[1], out_of_office, stamp, T0),
    OBSERVED_PAIRS, st.booleans(), STAMPS)
applied_starface = st.builds(
    StarfaceApplied, dnd_ours=st.booleans(), dnd_manual=st.booleans(), dnd_user_off=st.booleans(),
    chat_text=st.sampled_from([None, "Im Meeting", "Im Gespräch"]), telephony_active=st.booleans(),
    category=st.one_of(st.none(), st.sampled_from(Category)), sequence_number=STAMPS, observed_at=TIMES,
    chat_symbol=st.sampled_from([None, "DO_NOT_DISTURB", "AWAY"]))
applied_teams = st.builds(
    TeamsApplied, call_active=st.booleans(), held=SESSION_PAIRS, held_since=TIMES, released=SESSION_PAIRS,
    released_at=TIMES)


def _without_time(plan: StarfacePlan | None) -> tuple[object, ...] | None:
    """The plan's decision: what it asks of STARFACE, not when the observation was made."""
    if plan is None:
        return None
    return (plan.category, plan.dnd, plan.chat_text, plan.chat_symbol, plan.telephony_active,
            plan.sequence_number, plan.cause, plan.release)


def _answers(policy: TenantPolicy, observation: TeamsObservation, starface: StarfaceApplied,
             teams: TeamsApplied, unsettled: bool) -> list[tuple[object, ...] | None]:
    answers = []
    for delta in LATER:
        later = TeamsObservation(observation.availability, observation.activity, observation.out_of_office,
                                 observation.sequence_number, observation.observed_at + delta)
        answers.append(_without_time(plan_starface(policy, later, starface, teams, later.observed_at,
                                                   unsettled)))
    return answers


@settings(max_examples=1000)
@given(policies, observations, applied_starface, applied_teams, st.booleans())
def test_an_answer_it_calls_clock_free_is_the_same_at_any_later_time(
        policy: TenantPolicy, observation: TeamsObservation, starface: StarfaceApplied,
        teams: TeamsApplied, unsettled: bool) -> None:
    if decided_without_clock(observation, starface, teams):
        answers = _answers(policy, observation, starface, teams, unsettled)
        assert answers == [answers[0]] * len(LATER)


def test_within_the_echo_window_the_clock_decides() -> None:
    released = TeamsApplied(released=DND_PRESENTING, released_at=T0 - timedelta(minutes=4))
    echo = TeamsObservation("DoNotDisturb", "Presenting", False, "A0000000002", T0)
    assert not decided_without_clock(echo, StarfaceApplied(), released)
    answers = _answers(TenantPolicy(), echo, StarfaceApplied(), released, False)
    assert answers[0] is None  # our own echo while the window is open
    assert answers[-1] is not None  # a day later the same pair is the user's own DND


def test_ordered_by_observation_time_the_clock_decides() -> None:
    applied = StarfaceApplied(category=Category.AVAILABLE, observed_at=T0 + timedelta(minutes=1))
    unstamped = TeamsObservation("Busy", "InACall", False, None, T0)
    assert not decided_without_clock(unstamped, applied, NO_TEAMS_SESSION)
    answers = _answers(TenantPolicy(), unstamped, applied, NO_TEAMS_SESSION, False)
    assert answers[0] is None  # older than what is applied
    assert answers[-1] is not None  # observed after it: a change to apply
    assert decided_without_clock(unstamped, StarfaceApplied(), NO_TEAMS_SESSION)  # nothing applied yet
