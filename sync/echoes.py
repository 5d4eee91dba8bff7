"""Echoes of our own STARFACE writes, recognised where the bridge's events come in.

Every DND, chat status and telephony status TeamsConnect writes comes back from the bridge as an event with
origin "integration" (starface-bridge.md). Such an event carries no fact for the engine (only origin "user"
events do, presence/to_teams.py) and, when it shows exactly what we wrote, no evidence of another sync
either (sync/rivals.py only counts what contradicts our writes). Queued, each cost a Celery task, two
transactions and a Teams-session reconcile that changes nothing: in a burst of 2,000 changes they were 4,000
of the 4,100 webhook requests and a third of the host's CPU (issue 14).

So each write is noted just before it is sent (one Redis round trip for a user's writes; the note names
the tenant, the account and the value written), and the receiver drops the note with the first event of
origin "integration" that shows that value for that user: that one event is acknowledged and not queued.
One note answers one event; dropping it and recording the event id are one Redis round trip
(``Coordination.admit_event_id``). A user's own DND change (origin "user") drops the user's DND notes, so
another integration's DND write after it is judged in full. Every other event takes the usual path - an
echo that finds no note (later than ``ECHO_NOTE_TTL_S``, or a second echo of one write) included, where
rivals.observe_event tells echoes from evidence as before.
"""

from __future__ import annotations

import hashlib

from connectors.starface import StarfaceEvent
from sync.coordination import Coordination

#: How long a note waits for its echo: the bridge delivers within seconds (it retries for 10 minutes, and an
#: echo later than this is judged by the event task as before).
ECHO_NOTE_TTL_S = 60.0


def _dnd_note(account: int, on: bool) -> str:
    return f"own:{account}:dnd:{'on' if on else 'off'}"


def _chat_note(account: int, message: str) -> str:
    # The text's digest keeps the key short whatever the user's status text holds.
    return f"own:{account}:chat:{hashlib.sha256(message.encode('utf-8')).hexdigest()[:32]}"


def _telephony_note(account: int, state: str) -> str:
    return f"own:{account}:telephony:{state}"


class OwnWrites:
    """Notes the writes of one tenant's update just before they are sent (``perform_writes(own=...)``)."""

    def __init__(self, coordination: Coordination, tenant_id: int) -> None:
        self._coordination = coordination
        self._tenant_id = tenant_id

    def note(self, account: int, dnd: bool | None, chat_message: str | None, telephony: str | None) -> None:
        """Notes what is about to be written for ``account`` (None: not written; ``chat_message``: the text
        setChatStatus sends), in one round trip."""
        names = []
        if dnd is not None:
            names.append(_dnd_note(account, dnd))
        if chat_message is not None:
            names.append(_chat_note(account, chat_message))
        if telephony is not None:
            names.append(_telephony_note(account, str(telephony)))
        if names:
            self._coordination.note_many(self._tenant_id, names, ECHO_NOTE_TTL_S)


def echo_note(event: StarfaceEvent) -> str | None:
    """The note a write of ours leaves for the echo ``event`` would be (None: this event echoes nothing of
    ours). The receiver drops it together with recording the event id (``Coordination.admit_event_id``):
    one round trip for an echo."""
    if event.origin != "integration":
        return None
    if event.type == "dnd" and event.dnd is not None:
        return _dnd_note(event.account, event.dnd)
    if event.type == "presence":
        return _chat_note(event.account, event.chat_presence_message or "")
    if event.type == "telephony" and event.telephony_state is not None:
        return _telephony_note(event.account, str(event.telephony_state))
    return None


def forget_dnd_notes(coordination: Coordination, tenant_id: int, event: StarfaceEvent) -> None:
    """A user's own DND change drops the user's DND notes: another integration's DND write after it is
    judged in full (it may be a rival sync), whatever note of ours still waits."""
    if event.origin == "user" and event.type == "dnd":
        coordination.drop_notes(tenant_id, [_dnd_note(event.account, True), _dnd_note(event.account, False)])
