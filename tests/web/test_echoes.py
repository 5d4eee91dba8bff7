"""The echo of a write of ours is answered by the receiver and never queued; every other event still is
(sync/echoes.py)."""

from __future__ import annotations

from typing import Any

import redis
from fastapi.testclient import TestClient

from sync.coordination import RedisCoordination
from sync.echoes import OwnWrites
from sync.runtime import Runtime
from tests.web.conftest import SECRET_A, SECRET_B, Broker, Tenants, event_body, post_event

TEXT = "Im Teams-Meeting"
ECHO_ANSWER = "echo of a TeamsConnect write"


def _integration(**fields: Any) -> dict[str, Any]:
    """An event of origin "integration" (REST API, a module or the bridge) for account 17."""
    return event_body(origin="integration", **{"telephonyState": None, **fields})


def _dnd(on: bool, **fields: Any) -> dict[str, Any]:
    return _integration(type="dnd", dnd=on, **fields)


def _chat(message: str) -> dict[str, Any]:
    return _integration(type="presence", chatPresence="DO_NOT_DISTURB", chatPresenceMessage=message)


def test_the_echo_of_each_noted_write_is_answered_once_and_not_queued(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime
) -> None:
    OwnWrites(runtime.coordination, tenants.alpha).note(17, dnd=True, chat_message=TEXT, telephony="ACTIVE")
    echoes = [_dnd(True), _chat(TEXT), _integration(telephonyState="ACTIVE")]

    answers = [post_event(client, tenants.alpha, SECRET_A, body) for body in echoes]

    assert [(a.status_code, a.json()) for a in answers] == [
        (202, {"ignored": body["eventId"], "reason": ECHO_ANSWER}) for body in echoes]
    assert broker.raw_messages() == []
    # One note answers one event: a second DND-on event is no echo of that write.
    again = _dnd(True)
    assert post_event(client, tenants.alpha, SECRET_A, again).json() == {"accepted": again["eventId"]}
    assert [m["kwargs"]["event"]["event_id"] for m in broker.messages()] == [again["eventId"]]


def test_events_that_differ_from_the_noted_write_are_queued(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime
) -> None:
    OwnWrites(runtime.coordination, tenants.alpha).note(17, dnd=True, chat_message=TEXT, telephony=None)
    others = [
        (tenants.alpha, SECRET_A, _dnd(False)),  # the other value: another integration switched it off
        (tenants.alpha, SECRET_A, _dnd(True, account=18, login="1018")),  # another user
        (tenants.alpha, SECRET_A, _chat("Mittagspause")),  # another text
        (tenants.alpha, SECRET_A, _integration(telephonyState="ACTIVE")),  # nothing of this kind written
        (tenants.beta, SECRET_B, _dnd(True)),  # the same account number in another tenant
    ]

    answers = [post_event(client, tenant, secret, body) for tenant, secret, body in others]

    assert [a.json() for a in answers] == [{"accepted": body["eventId"]} for _, _, body in others]
    assert len(broker.messages()) == len(others)
    # The notes are still there for the real echoes.
    assert post_event(client, tenants.alpha, SECRET_A, _dnd(True)).json()["reason"] == ECHO_ANSWER
    assert post_event(client, tenants.alpha, SECRET_A, _chat(TEXT)).json()["reason"] == ECHO_ANSWER


def test_a_users_own_dnd_change_drops_the_note(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime
) -> None:
    """After the user switched DND by hand, another integration switching it on is judged in full (it may
    be a rival sync), even if a note of ours for DND on is still waiting (a write that caused no event)."""
    OwnWrites(runtime.coordination, tenants.alpha).note(17, dnd=True, chat_message=None, telephony=None)
    by_hand = event_body(type="dnd", dnd=False, telephonyState=None)  # origin "user"
    after = _dnd(True)

    assert post_event(client, tenants.alpha, SECRET_A, by_hand).json() == {"accepted": by_hand["eventId"]}
    assert post_event(client, tenants.alpha, SECRET_A, after).json() == {"accepted": after["eventId"]}
    assert len(broker.messages()) == 2


class _CountingRedis(redis.Redis):
    """The real client, naming each command it sends (each is one round trip: nothing here is pipelined)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return super().execute_command(*args, **options)


def test_an_echo_costs_the_receiver_one_redis_round_trip(
    client: TestClient, tenants: Tenants, broker: Broker, runtime: Runtime, redis_client: redis.Redis
) -> None:
    """Recording the event id, dropping the note and keeping the id as done are one script call: a burst
    of N changes brings 2N echoes, which cost three round trips each before."""
    counting = _CountingRedis(connection_pool=redis_client.connection_pool)
    runtime.coordination = RedisCoordination(counting)
    own = OwnWrites(runtime.coordination, tenants.alpha)
    own.note(17, dnd=True, chat_message=None, telephony=None)
    post_event(client, tenants.alpha, SECRET_A, _dnd(True))  # loads the script into Redis
    own.note(17, dnd=False, chat_message=None, telephony=None)
    counting.commands.clear()

    echo = _dnd(False)
    answer = post_event(client, tenants.alpha, SECRET_A, echo)

    assert answer.json() == {"ignored": echo["eventId"], "reason": ECHO_ANSWER}
    assert counting.commands == ["EVALSHA"]
    # The id is kept as done: a replay of the echo is a duplicate, not a new event.
    assert post_event(client, tenants.alpha, SECRET_A, echo).json() == {"duplicate": echo["eventId"]}
    assert broker.raw_messages() == []
