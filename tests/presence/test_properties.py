"""Property tests (issue 5, "Done when"): random interleavings of Teams and STARFACE actions, duplicated
and reordered observations and events, run through the model in `model.py` with random tenant policies.

Shown for every run:
1. deciding twice on the same inputs writes once (observations and events);
2. a DND set by hand in STARFACE is overridden only by a Teams status change, and only while Teams leads
   (the default); with "respect a DND set by hand" never (issue 11);
3. no loop, no stuck state: once all calls have ended and the user is Available in Teams, a bounded
   number of sync cycles leaves no DND, text, ACTIVE telephony or Teams session of ours (a Teams DND
   session remains exactly when a manual STARFACE DND is mirrored by the tenant's choice);
4. an older observation never overrides a newer one: it writes nothing, and the applied observation
   stamp never goes backwards.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from presence import (
    CALL_CATEGORIES,
    DND_PRESENTING,
    ECHO_WINDOW,
    DndAction,
    SessionActionKind,
    TeamsPresenceMode,
    TenantPolicy,
    categorize,
    is_older,
)
from tests.presence.model import CLIENT_STATES, PREFERRED_STATES, World

policies = st.builds(
    TenantPolicy,
    set_dnd=st.booleans(),
    set_chat_text=st.booleans(),
    set_telephony=st.booleans(),
    set_teams_presence=st.booleans(),
    teams_presence_mode=st.sampled_from(TeamsPresenceMode),
    ringing_counts_as_call=st.booleans(),
    respect_manual_dnd=st.booleans(),
    manual_dnd_to_teams=st.booleans(),
    has_bridge=st.booleans(),
)

actions = st.one_of(
    st.tuples(st.just("teams_client"), st.sampled_from(sorted(CLIENT_STATES))),
    st.tuples(st.just("teams_preferred"), st.sampled_from([None, *sorted(PREFERRED_STATES)])),
    st.tuples(st.just("teams_out_of_office"), st.booleans()),
    st.tuples(st.just("starface_call"), st.sampled_from(["RINGING", "ACTIVE", "AVAILABLE"])),
    st.tuples(st.just("starface_user_dnd"), st.booleans()),
    st.tuples(st.just("ucc_overwrites_chat"), st.sampled_from(["", "Im Meeting", "Available"])),
    st.tuples(st.just("poll"), st.none()),
    st.tuples(st.just("sync"), st.none()),
    st.tuples(st.just("sync"), st.none()),
    st.tuples(st.just("redeliver_observation"), st.integers(0, 50)),
    st.tuples(st.just("deliver_event"), st.integers(0, 50)),
    st.tuples(st.just("redeliver_event"), st.integers(0, 50)),
    st.tuples(st.just("keep_alive"), st.none()),
    st.tuples(st.just("drift_repair"), st.none()),
    st.tuples(st.just("advance"), st.sampled_from([5, 60, 240, 600])),
)

SETTLE_CYCLES = 8  # 8 cycles of 2 minutes: past the echo window and a refresh interval


def run(world: World, steps: list[tuple[str, object]]) -> None:
    """Play the steps, checking properties 1, 2 and 4 after each."""
    for name, arg in steps:
        before = world.applied_starface
        if name == "poll":
            if world.poll():
                # Property 1: the same observation decided again writes nothing.
                assert world.deliver_observation(world.observations[-1]) == 0
        elif name == "redeliver_observation":
            if world.observations:
                observation = world.observations[int(arg) % len(world.observations)]  # type: ignore[call-overload]
                older = is_older(
                    observation.sequence_number, observation.observed_at,
                    before.sequence_number, before.observed_at,
                )
                written = world.deliver_observation(observation)
                if older:
                    assert written == 0, "an older observation wrote to STARFACE"  # property 4
        elif name == "deliver_event":
            if world.starface.events:
                event = world.starface.events.pop(int(arg) % len(world.starface.events))  # type: ignore[call-overload]
                world.deliver_event(event)
                # Property 1 for events: the same event again changes nothing.
                teams, starface = world.applied_teams, world.applied_starface
                assert world.deliver_event(event) is SessionActionKind.NOTHING
                assert (world.applied_teams, world.applied_starface) == (teams, starface)
        elif name == "redeliver_event":
            if world.delivered_events:
                world.deliver_event(world.delivered_events[int(arg) % len(world.delivered_events)])  # type: ignore[call-overload]
        elif name == "advance":
            world.advance(float(arg))  # type: ignore[arg-type]
        elif name in ("keep_alive", "drift_repair", "sync"):
            getattr(world, name)()
        else:
            getattr(world, name)(arg)
        assert not world.violations, world.violations  # property 2
        after = world.applied_starface
        assert not is_older(  # property 4: the applied stamp never goes backwards
            after.sequence_number, after.observed_at, before.sequence_number, before.observed_at
        )


def settle(world: World) -> None:
    """All calls end, the user is plainly Available in Teams; then the workers keep running."""
    if world.starface.real_call != "AVAILABLE":
        world.starface_call("AVAILABLE")
    world.teams_client("available")
    world.teams_preferred(None)
    world.teams_out_of_office(False)
    for _ in range(SETTLE_CYCLES):
        world.advance(120)
        world.sync()
        world.drift_repair()


def assert_nothing_of_ours_remains(world: World) -> None:
    sf, policy = world.starface, world.policy
    assert not sf.dnd or sf.dnd_by_hand, "a DND of ours is left on"
    our_texts = {rule.chat_text for rule in policy.rules.values() if rule.chat_text}
    assert sf.chat_text not in our_texts, f"our chat text {sf.chat_text!r} is left"
    assert sf.telephony != "ACTIVE", "our telephony ACTIVE is left"
    assert sf.chat_symbol == "AVAILABLE", f"our chat symbol {sf.chat_symbol} is left"
    mirrored_dnd = policy.teams_session_enabled and policy.manual_dnd_to_teams and sf.dnd and sf.dnd_by_hand
    expected = DND_PRESENTING if mirrored_dnd else None
    assert world.teams.app_session == expected, "a Teams session of ours is left (or missing)"
    assert not world.violations, world.violations


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, steps=st.lists(actions, max_size=40))
def test_it_keeps_its_invariants_over_random_interleavings(policy: TenantPolicy, steps) -> None:
    world = World(policy)
    run(world, steps)
    settle(world)
    assert_nothing_of_ours_remains(world)
    # Property 1 after settling: another full cycle writes nothing at all.
    written_before = len(world.writes)
    world.advance(30)
    world.deliver_pending_events()
    assert world.poll() == 0
    assert len(world.writes) == written_before


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    states=st.lists(
        st.tuples(st.sampled_from(sorted(CLIENT_STATES)), st.booleans()), min_size=2, max_size=8
    ),
    order=st.randoms(use_true_random=False),
)
def test_it_ends_where_the_newest_observation_says_whatever_the_delivery_order(policy, states, order) -> None:
    """Property 4: observations delivered shuffled and duplicated leave STARFACE as in-order delivery does."""
    source = World(policy)
    for client, out_of_office in states:
        source.teams_client(client)
        source.teams_out_of_office(out_of_office)
        source.observations.append(source.teams.observe(source.now))
    in_order, shuffled = World(policy), World(policy)
    for observation in source.observations:
        in_order.deliver_observation(observation)
    replay = source.observations * 2
    order.shuffle(replay)
    newest = source.observations[-1]
    for observation in [*replay, newest]:
        shuffled.deliver_observation(observation)
    # DND under a `leave` rule keeps whatever the path left; everything else depends on the newest only.
    leave = policy.rules[categorize(newest.availability, newest.activity, newest.out_of_office)].dnd
    for world in (shuffled, in_order):
        world.starface.dnd = world.starface.dnd if leave is not DndAction.LEAVE else None  # type: ignore[assignment]
    assert (shuffled.starface.dnd, shuffled.starface.chat_text, shuffled.starface.telephony) == (
        in_order.starface.dnd, in_order.starface.chat_text, in_order.starface.telephony
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies,
    steps=st.lists(actions, max_size=30),
    client=st.sampled_from(sorted(CLIENT_STATES)),
    out_of_office=st.booleans(),
)
def test_it_converges_to_what_the_rules_ask(policy, steps, client, out_of_office) -> None:
    """Level-triggered convergence: after any history, STARFACE shows the text and telephony status the
    final Teams state asks for (an overwritten chat text is re-applied), unless our mirrored DND session
    hides Teams."""
    world = World(policy)
    run(world, steps)
    if world.starface.real_call != "AVAILABLE":
        world.starface_call("AVAILABLE")
    world.teams_preferred(None)
    world.teams_client(client)
    world.teams_out_of_office(out_of_office)
    world.ucc_overwrites_chat("Available")  # the STARFACE app overwrites the text once more
    for _ in range(SETTLE_CYCLES):
        world.advance(120)
        world.sync()
        world.drift_repair()
    rule = policy.rules[categorize(*CLIENT_STATES[client], out_of_office)]
    hidden = world.teams.app_session is not None
    if policy.chat_enabled and rule.chat_text and not hidden:
        assert world.starface.chat_text == rule.chat_text
    if policy.chat_enabled and not hidden:  # issue 11: the symbol the row asks for, else the user's
        assert world.starface.chat_symbol == (rule.chat_symbol or "AVAILABLE")
    if policy.telephony_enabled and not hidden:
        category = categorize(*CLIENT_STATES[client], out_of_office)
        assert (world.starface.telephony == "ACTIVE") == (category in CALL_CATEGORIES)
    assert not world.violations, world.violations


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    policy=policies,
    steps=st.lists(actions, max_size=30),
    manual_dnd=st.booleans(),
    client=st.sampled_from(sorted(CLIENT_STATES)),
)
def test_a_teams_change_decides_the_dnd_over_a_manual_one_only_while_teams_leads(
    policy, steps, manual_dnd, client
) -> None:
    """Issue 11, both modes: after any history, the user sets (or clears) DND by hand; the next Teams status
    change applies its rule over it when Teams leads, and never overrides it with "respect a DND set by
    hand"; polls and drift repair in between leave the user's choice alone (the model flags any write
    that overrides a manual DND outside a Teams change as a violation)."""
    world = World(policy)
    run(world, steps)
    if world.starface.real_call != "AVAILABLE":
        world.starface_call("AVAILABLE")
    world.teams_preferred(None)
    world.teams_out_of_office(False)
    for _ in range(SETTLE_CYCLES):
        world.advance(120)
        world.sync()
        world.drift_repair()
    # The engine knows the user's current status (a status whose rule changed nothing may be unrecorded;
    # its first decision then counts as a change).
    assume(world.applied_starface.category == categorize(*CLIENT_STATES[world.teams.client]))
    world.starface_user_dnd(not manual_dnd)
    world.starface_user_dnd(manual_dnd)
    for _ in range(2):  # no Teams change: the user's choice stays
        world.advance(120)
        world.sync()
        world.drift_repair()
    assume(world.teams.app_session is None)  # a mirrored manual DND hides Teams: nothing to decide
    assert world.starface.dnd == manual_dnd
    before = world.applied_starface.category
    world.advance(ECHO_WINDOW.total_seconds())  # a mirrored DND's session is gone for good, not an echo
    world.teams_client(client)
    world.sync()
    category = categorize(*CLIENT_STATES[client])
    assume(category != before and world.teams.app_session is None)
    action = policy.rules[category].dnd if policy.set_dnd else DndAction.CLEAR
    if not policy.set_dnd or action is DndAction.LEAVE or policy.respect_manual_dnd:
        expected = manual_dnd
        if policy.respect_manual_dnd and policy.set_dnd and action is DndAction.SET:
            expected = True  # our own DND for the new status (the user's "off" is asked again)
        assert world.starface.dnd == expected
    else:
        assert world.starface.dnd == (action is DndAction.SET)  # Teams leads over the manual DND
    assert not world.violations, world.violations
