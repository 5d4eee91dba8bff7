"""Named scenarios, each played through the model of both systems (`model.py`) and the real engine.

The test column drops the `test_it_` prefix.

| scenario                                              | test                                               |
|-------------------------------------------------------|----------------------------------------------------|
| Teams call -> DND + text -> cleared                   | sets_dnd_and_text_for_a_teams_call_then_clears     |
| deciding twice writes once                            | writes_once_when_the_same_presence_repeats         |
| InACall flapping to InAMeeting mid-call               | keeps_dnd_when_a_call_flaps_to_a_meeting           |
| manual Teams DND                                      | mirrors_a_manual_teams_dnd                         |
| Busy leaves DND alone                                 | leaves_dnd_alone_for_busy                          |
| out of office                                         | shows_out_of_office_without_touching_dnd           |
| "respect a DND set by hand": survives Teams Available | never_clears_a_manual_starface_dnd_when_respected  |
| manual DND found in the read before writing           | finds_a_manual_dnd_in_the_read_before_writing      |
| Teams leads (default) over a manual DND               | lets_teams_lead_over_a_manual_dnd_by_default       |
| Teams leads also without the bridge (read in apply)   | lets_teams_lead_over_a_manual_dnd_without_a_bridge |
| onboarding (first look) clears no manual DND          | keeps_a_manual_dnd_at_the_first_look               |
| manual DND stays until the next Teams change          | keeps_a_manual_dnd_until_the_next_teams_change     |
| user toggles DND by hand during a Teams call          | respects_dnd_toggled_by_hand_when_respected        |
| user switches our DND off during a Teams call         | does_not_fight_the_user_switching_dnd_off          |
| UCC overwrites the chat text                          | reapplies_chat_text_the_ucc_overwrote              |
| UCC text after the category moved on stays            | leaves_a_foreign_text_when_no_text_is_wanted       |
| both outputs switched off                             | writes_nothing_when_both_outputs_are_off           |
| switching an output off releases what we own          | releases_our_dnd_when_dnd_output_is_switched_off   |
| REST-only tenant                                      | writes_only_dnd_without_a_bridge                   |
| telephony follows Teams calls, written on change      | writes_telephony_only_when_it_changes              |
| chat symbol per row; keep leaves the user's symbol    | sets_the_rows_chat_symbol_and_keeps_the_users      |
| STARFACE call -> Teams session -> cleared             | holds_a_teams_session_during_a_starface_call       |
| call ends while Teams still reports our session       | ignores_the_echo_after_a_starface_call_ends        |
| STARFACE call while a Teams meeting runs              | keeps_meeting_dnd_during_a_starface_call           |
| our telephony write never comes back as a call        | ignores_its_own_telephony_echo                     |
| ringing counts only when the tenant says so           | counts_ringing_only_when_enabled                   |
| DND/Presenting mode                                   | uses_dnd_presenting_when_configured                |
| keep-alive refreshes; a dead service lapses in 15 min | refreshes_the_session_and_lets_it_lapse            |
| lost call-end event repaired from getStates           | ends_a_call_whose_end_event_was_lost               |
| lost call-start event repaired from getStates         | starts_a_call_whose_start_event_was_lost           |
| our telephony write, read back, never starts a call   | never_takes_its_own_active_read_back_for_a_call    |
| manual STARFACE DND -> Teams DND (opt-in)             | mirrors_manual_starface_dnd_to_teams_when_asked    |
| older observation decides nothing                     | drops_an_older_observation                         |
| duplicated and reordered STARFACE events              | applies_only_the_newest_telephony_event            |
| answered and ended in one millisecond, end first      | lets_the_end_win_a_tie_of_telephony_events         |
| rung and answered in one millisecond                  | counts_an_answer_in_the_millisecond_of_its_ring    |
"""

from __future__ import annotations

from datetime import timedelta

from presence import (
    DND_PRESENTING,
    SESSION_EXPIRY,
    SessionActionKind,
    TeamsPresenceMode,
    TenantPolicy,
    refresh_due_at,
)
from tests.presence.model import World


def world(**options: object) -> World:
    return World(TenantPolicy(**{"has_bridge": True, "set_telephony": True, **options}))  # type: ignore[arg-type]


def test_it_sets_dnd_and_text_for_a_teams_call_then_clears() -> None:
    w = world()
    w.teams_client("call")
    assert w.sync() == 4  # DND, text, telephony and (issue 11) the chat symbol
    expected = (True, "On a call in MS Teams", "ACTIVE", "DO_NOT_DISTURB")
    assert (w.starface.dnd, w.starface.chat_text, w.starface.telephony, w.starface.chat_symbol) == expected
    w.teams_client("available")
    w.sync()
    assert (w.starface.dnd, w.starface.chat_text, w.starface.telephony, w.starface.chat_symbol) == (
        False, "", "AVAILABLE", "AVAILABLE")
    assert w.teams.app_session is None  # our own DND/telephony echoes did not start a Teams session


def test_it_writes_once_when_the_same_presence_repeats() -> None:
    w = world()
    w.teams_client("meeting")
    assert w.sync() == 2
    for _ in range(3):
        w.advance(30)
        assert w.sync() == 0
    assert w.deliver_observation(w.observations[0]) == 0


def test_it_keeps_dnd_when_a_call_flaps_to_a_meeting() -> None:
    w = world()
    w.teams_client("call")
    w.sync()
    w.teams_client("meeting")
    w.sync()
    assert w.starface.dnd and w.starface.chat_text == "In a Teams meeting"
    assert w.starface.telephony == "AVAILABLE"
    w.teams_client("call")
    w.sync()
    assert [name for name, _ in w.writes].count("dnd") == 1  # DND never dropped while flapping


def test_it_mirrors_a_manual_teams_dnd() -> None:
    w = world()
    w.teams_preferred("dnd")
    w.sync()
    assert w.starface.dnd and w.starface.chat_text == "Do not disturb (MS Teams)"
    w.teams_preferred(None)
    w.sync()
    assert not w.starface.dnd and w.starface.chat_text == ""


def test_it_leaves_dnd_alone_for_busy() -> None:
    w = world()
    w.teams_client("busy")
    w.sync()
    assert not w.starface.dnd and w.starface.chat_text == "Busy (MS Teams)"
    w.starface_user_dnd(True)
    w.teams_client("away")
    w.sync()
    assert w.starface.dnd and w.starface.chat_text == ""


def test_it_shows_out_of_office_without_touching_dnd() -> None:
    w = world()
    w.teams_client("offline")
    w.teams_out_of_office(True)
    w.sync()
    assert not w.starface.dnd and w.starface.chat_text == "Out of office"
    w.teams_client("call")  # a call during out of office is still a call
    w.sync()
    assert w.starface.dnd and w.starface.chat_text == "On a call in MS Teams"


def test_it_never_clears_a_manual_starface_dnd_when_respected() -> None:
    w = world(respect_manual_dnd=True)
    w.starface_user_dnd(True)
    w.teams_client("call")
    w.sync()
    w.teams_client("available")
    w.sync()
    assert w.starface.dnd and w.starface.dnd_by_hand and not w.violations
    assert ("dnd", False) not in w.writes


def test_it_finds_a_manual_dnd_in_the_read_before_writing() -> None:
    w = World(TenantPolicy(has_bridge=False, respect_manual_dnd=True))
    w.starface.dnd = w.starface.dnd_by_hand = True  # switched on before we ever looked
    w.teams_client("call")
    w.sync()
    assert w.applied_starface.dnd_manual and not w.applied_starface.dnd_ours
    w.teams_client("available")
    w.sync()
    assert w.starface.dnd and not w.violations


def test_it_lets_teams_lead_over_a_manual_dnd_by_default() -> None:
    w = world()
    w.teams_client("busy")  # a status whose text is written: a decision is recorded for the user
    w.sync()
    w.starface_user_dnd(True)
    w.teams_client("call")
    w.sync()
    assert w.applied_starface.dnd_ours and not w.applied_starface.dnd_manual  # claimed: now follows Teams
    w.teams_client("available")
    w.sync()
    assert not w.starface.dnd and not w.violations  # Teams leads: the manual DND follows Teams


def test_it_lets_teams_lead_over_a_manual_dnd_without_a_bridge() -> None:
    w = World(TenantPolicy(has_bridge=False))
    w.teams_client("call")
    w.sync()
    w.teams_client("busy")
    w.sync()
    w.starface.dnd = w.starface.dnd_by_hand = True  # no event without the bridge: nobody told us
    w.teams_client("available")  # a Teams change asking to clear: the update task reads and clears it
    w.sync()
    assert not w.starface.dnd and not w.violations
    assert w.sync() == 0


def test_it_keeps_a_manual_dnd_at_the_first_look() -> None:
    for policy in (TenantPolicy(has_bridge=False), TenantPolicy(has_bridge=True), TenantPolicy(
            respect_manual_dnd=True)):
        w = World(policy)
        w.starface.dnd = w.starface.dnd_by_hand = True  # switched on before the tenant was added
        w.teams_client("available")
        w.sync()
        assert w.starface.dnd and not w.violations


def test_it_keeps_a_manual_dnd_until_the_next_teams_change() -> None:
    w = world()
    w.teams_client("busy")  # a `leave` rule
    w.sync()
    w.starface_user_dnd(True)
    for _ in range(3):
        w.advance(120)
        w.sync()
        w.drift_repair()
    assert w.starface.dnd and w.starface.dnd_by_hand  # no Teams change: the user's DND stays
    w.teams_client("call")
    w.sync()
    w.starface_user_dnd(False)  # switched off by hand during the call: stays off while the call lasts
    w.sync()
    w.drift_repair()
    assert not w.starface.dnd
    w.teams_client("available")
    w.sync()
    assert not w.starface.dnd and not w.violations


def test_it_respects_dnd_toggled_by_hand_when_respected() -> None:
    w = world(respect_manual_dnd=True)
    w.teams_client("call")
    w.sync()
    w.starface_user_dnd(False)
    w.starface_user_dnd(True)  # the user now wants DND, whatever Teams does
    w.teams_client("available")
    w.sync()
    assert w.starface.dnd and not w.violations


def test_it_does_not_fight_the_user_switching_dnd_off() -> None:
    w = world()
    w.teams_client("call")
    w.sync()
    w.starface_user_dnd(False)
    w.advance(60)
    w.sync()
    w.drift_repair()
    assert not w.starface.dnd  # stays off while the call lasts
    w.teams_client("meeting")  # a new category asks again
    w.sync()
    assert w.starface.dnd


def test_it_reapplies_chat_text_the_ucc_overwrote() -> None:
    w = world()
    w.teams_client("meeting")
    w.sync()
    w.ucc_overwrites_chat("")
    assert w.drift_repair() == 1
    assert w.starface.chat_text == "In a Teams meeting"
    assert w.drift_repair() == 0


def test_it_leaves_a_foreign_text_when_no_text_is_wanted() -> None:
    w = world()
    w.teams_client("meeting")
    w.sync()
    w.ucc_overwrites_chat("Lunch")
    w.teams_client("available")
    w.sync()
    w.drift_repair()
    assert w.starface.chat_text == "Lunch" and w.applied_starface.chat_text is None


def test_it_writes_nothing_when_both_outputs_are_off() -> None:
    w = world(set_dnd=False, set_chat_text=False, set_telephony=False)
    w.teams_client("call")
    assert w.sync() == 0
    assert (w.starface.dnd, w.starface.chat_text) == (False, "")


def test_it_releases_our_dnd_when_dnd_output_is_switched_off() -> None:
    w = world()
    w.teams_client("call")
    w.sync()
    w.policy = TenantPolicy(has_bridge=True, set_dnd=False, set_chat_text=False)
    w.advance(30)
    w.sync()
    assert (w.starface.dnd, w.starface.chat_text, w.starface.telephony) == (False, "", "AVAILABLE")


def test_it_writes_only_dnd_without_a_bridge() -> None:
    w = World(TenantPolicy(has_bridge=False, set_telephony=True))
    w.teams_client("call")
    assert w.sync() == 1
    assert w.writes == [("dnd", True)]
    w.starface_call("ACTIVE")  # no bridge: no events, no Teams session
    w.sync()
    assert w.teams.app_session is None


def test_it_writes_telephony_only_when_it_changes() -> None:
    w = world(set_dnd=False, set_chat_text=False)
    w.teams_client("call")
    w.sync()
    w.teams_client("presenting")
    w.sync()
    w.teams_client("available")
    w.sync()
    assert w.writes == [("telephony_state", "ACTIVE"), ("telephony_state", "AVAILABLE")]


def test_it_holds_a_teams_session_during_a_starface_call() -> None:
    w = world()
    w.starface_call("ACTIVE")
    w.sync()
    assert w.teams.app_session == DND_PRESENTING
    assert not w.starface.dnd  # the Teams echo of our session is not a Teams call
    w.starface_call("AVAILABLE")
    w.sync()
    assert w.teams.app_session is None and not w.starface.dnd


def test_it_ignores_the_echo_after_a_starface_call_ends() -> None:
    w = world()
    w.starface_call("ACTIVE")
    w.sync()
    w.starface_call("AVAILABLE")
    w.deliver_pending_events()
    # Teams still reports our session for a few minutes (clients poll).
    w.teams.app_session, w.teams.app_expires_at = DND_PRESENTING, w.now + timedelta(minutes=3)
    assert w.poll() == 0
    assert not w.starface.dnd and w.starface.chat_text == ""


def test_it_keeps_meeting_dnd_during_a_starface_call() -> None:
    w = world()
    w.teams_client("meeting")
    w.sync()
    w.starface_call("ACTIVE")
    w.sync()
    assert w.teams.app_session == DND_PRESENTING
    assert w.starface.dnd and w.starface.chat_text == "In a Teams meeting"
    assert w.starface.telephony == "ACTIVE"  # the real call's status, not ours
    w.starface_call("AVAILABLE")
    w.teams_client("available")
    w.sync()
    assert not w.starface.dnd and w.teams.app_session is None


def test_it_ignores_its_own_telephony_echo() -> None:
    w = world()
    w.teams_client("call")
    w.sync()  # writes ACTIVE, whose integration event is delivered in the next cycle
    w.sync()
    assert w.teams.app_session is None and not w.applied_teams.call_active


def test_it_counts_ringing_only_when_enabled() -> None:
    off, on = world(), world(ringing_counts_as_call=True)
    for w in (off, on):
        w.starface_call("RINGING")
        w.sync()
    assert off.teams.app_session is None and on.teams.app_session == DND_PRESENTING


def test_it_uses_dnd_presenting_when_configured() -> None:
    w = world(teams_presence_mode=TeamsPresenceMode.DND_PRESENTING)
    w.starface_call("ACTIVE")
    w.sync()
    assert w.teams.app_session == DND_PRESENTING and not w.starface.dnd


def test_it_refreshes_the_session_and_lets_it_lapse() -> None:
    w = world()
    w.starface_call("ACTIVE")
    w.sync()
    due = refresh_due_at(w.applied_teams)
    assert due is not None and due > w.now
    w.now = due
    assert w.keep_alive() is SessionActionKind.REFRESH
    assert w.keep_alive() is SessionActionKind.NOTHING
    w.advance(SESSION_EXPIRY.total_seconds())  # the service died: Graph drops the session by itself
    w.teams.aggregate(w.now)
    assert w.teams.app_session is None


def test_it_ends_a_call_whose_end_event_was_lost() -> None:
    w = world()
    w.starface_call("ACTIVE")
    w.sync()
    w.starface.real_call = w.starface.telephony = "AVAILABLE"  # the end event never arrived
    w.advance(300)
    w.drift_repair()
    assert w.teams.app_session is None and not w.applied_teams.call_active


def test_it_starts_a_call_whose_start_event_was_lost() -> None:
    w = world()
    w.starface.real_call = w.starface.telephony = "ACTIVE"  # answered; the event never arrived
    w.advance(5)
    w.drift_repair()
    assert w.teams.app_session == DND_PRESENTING and w.applied_teams.call_active
    w.starface_call("AVAILABLE")  # the hang-up event still counts
    w.sync()
    assert w.teams.app_session is None and not w.applied_teams.call_active


def test_it_never_takes_its_own_active_read_back_for_a_call() -> None:
    w = world()
    w.teams_client("call")
    w.sync()  # writes the telephony status ACTIVE for the Teams call
    assert w.starface.telephony == "ACTIVE"
    w.advance(300)
    w.drift_repair()
    assert w.teams.app_session is None and not w.applied_teams.call_active


def test_it_mirrors_manual_starface_dnd_to_teams_when_asked() -> None:
    off, on = world(), world(manual_dnd_to_teams=True)
    for w in (off, on):
        w.teams_client("busy")
        w.sync()
        w.starface_user_dnd(True)
        w.sync()
    assert off.teams.app_session is None
    assert on.teams.app_session == DND_PRESENTING
    assert on.starface.chat_text == ""  # Teams is hidden behind our session: its text is released
    on.starface_user_dnd(False)
    on.sync()
    assert on.teams.app_session is None and on.starface.chat_text == "Busy (MS Teams)"


def test_it_drops_an_older_observation() -> None:
    w = world()
    w.teams_client("call")
    w.poll()
    old = w.observations[-1]
    w.teams_client("available")
    w.poll()
    assert w.deliver_observation(old) == 0
    assert not w.starface.dnd


def test_it_applies_only_the_newest_telephony_event() -> None:
    w = world()
    w.starface_call("ACTIVE")
    w.starface_call("AVAILABLE")
    start, end = w.starface.events
    w.deliver_event(end)
    w.deliver_event(start)  # late: older than the end
    w.deliver_event(end)  # duplicate
    assert w.teams.app_session is None and not w.applied_teams.call_active


def test_it_lets_the_end_win_a_tie_of_telephony_events() -> None:
    """Chaos suite (webhooks reordered; STARFACE down): a call answered and hung up within the same
    millisecond, the hang-up delivered first - the start must not set a session nothing would clear."""
    w = world()
    w.starface_call("ACTIVE", then_s=0)
    w.starface_call("AVAILABLE")
    start, end = w.starface.events
    assert start.occurred_at == end.occurred_at
    w.deliver_event(end)
    w.deliver_event(start)
    w.deliver_event(end)  # and again, in either order
    w.deliver_event(start)
    assert w.teams.app_session is None and not w.applied_teams.call_active


def test_it_does_not_relearn_a_redelivered_dnd_event_over_a_dnd_of_ours() -> None:
    """Found by the property test: Teams call, the user toggles DND on and off by hand, we set DND for
    the call, then the bridge delivers the 'off' event again - our DND must still be ours and cleared."""
    from presence import TenantPolicy
    from tests.presence.model import World

    world = World(TenantPolicy(set_chat_text=False, set_teams_presence=False, has_bridge=True))
    world.teams_client("call")
    world.starface_user_dnd(True)
    world.starface_user_dnd(False)
    world.poll()
    world.deliver_event(world.delivered_events[1])  # the "off" event, delivered again
    world.teams_client("available")
    for _ in range(3):
        world.advance(120)
        world.sync()
    assert world.starface.dnd is False
    assert not world.violations


def test_it_recognises_a_late_read_of_a_session_pair_it_has_replaced_as_its_own_echo() -> None:
    """Found by the property test: a STARFACE call gives Busy/InACall, then a manual DND (mirrored)
    replaces it with DoNotDisturb/Presenting; a read of the old pair delivered ten minutes late is still
    our echo, not a Teams call to show in STARFACE."""
    from presence import TeamsPresenceMode, TenantPolicy
    from tests.presence.model import World
    from tests.presence.test_properties import run

    policy = TenantPolicy(set_dnd=False, teams_presence_mode=TeamsPresenceMode.BUSY_IN_A_CALL,
                          manual_dnd_to_teams=True, has_bridge=True)
    world = World(policy)
    run(world, [("starface_call", "ACTIVE"), ("sync", None), ("starface_user_dnd", True), ("advance", 600),
                ("redeliver_observation", 0)])
    assert world.starface.chat_text == ""
    assert not world.violations


def test_it_sets_the_rows_chat_symbol_and_keeps_the_users() -> None:
    w = world()
    w.teams_client("away")  # keep: the user's own symbol is left alone
    w.starface.chat_symbol = "EXTENDED_AWAY"
    w.sync()
    assert w.starface.chat_symbol == "EXTENDED_AWAY"
    w.teams_client("presenting")
    w.sync()
    assert (w.starface.chat_symbol, w.starface.chat_text) == ("DO_NOT_DISTURB", "Presenting in MS Teams")
    w.ucc_overwrites_chat("")  # the STARFACE app resets text and symbol: drift repair puts ours back
    assert w.drift_repair() == 2 and w.starface.chat_symbol == "DO_NOT_DISTURB"
    w.teams_client("meeting")  # keep again: only our own symbol is undone, the text follows the row
    w.sync()
    assert (w.starface.chat_symbol, w.starface.chat_text) == ("AVAILABLE", "In a Teams meeting")
    assert w.sync() == 0


def test_it_counts_an_answer_in_the_millisecond_of_its_ring() -> None:
    """The chaos suite's fault-free run lost such a call: the tie rule took the ring for the call's end."""
    for order in ("ring first", "answer first"):
        w = world()
        w.starface_call("RINGING", then_s=0)
        w.starface_call("ACTIVE")
        if order == "answer first":
            w.starface.events.reverse()
        w.sync()
        assert w.teams.app_session == DND_PRESENTING and w.applied_teams.call_active, order
