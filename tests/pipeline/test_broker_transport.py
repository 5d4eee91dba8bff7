"""The broker transport (workers/broker.py): a worker whose Redis went away keeps running instead of
exiting on work still under way on its old channel."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection

from tests.conftest import REDIS_URL
from workers.app import build_config

TRANSPORT = "workers.broker:Transport"


def test_the_workers_use_the_mended_transport_for_redis_brokers() -> None:
    assert build_config("redis://127.0.0.1:6379/0")["broker_transport"] == TRANSPORT
    assert "broker_transport" not in build_config("memory://")


def test_work_on_a_channel_whose_connection_is_gone_fails_as_a_lost_connection(
    redis_client: redis.Redis,
) -> None:
    """The state kombu is in when Redis restarted under a busy worker: a task delivered and not yet
    acknowledged, the channel's pools dropped, its connection released. Giving the task back and
    acknowledging it raised AttributeError there, which Celery takes for unrecoverable (the worker
    process exits); a connection error is what Celery handles by reconnecting."""
    connection = Connection(REDIS_URL, transport=TRANSPORT)
    channel = connection.channel()
    connection.Producer(channel).publish({"task": "t"}, routing_key="restore-test", declare=[])
    channel.queue_declare("restore-test")
    message = channel.basic_get("restore-test", no_ack=False)
    assert message is not None and len(channel.qos._delivered) == 1
    channel._disconnect_pools()  # what kombu does first on a connection error
    channel.connection.client = None  # ... and the connection is released before the channel's work ends

    lost = tuple(connection.connection_errors)
    with pytest.raises(lost):
        channel.qos.restore_unacked()
    with pytest.raises(lost):
        message.ack()
    channel.connection = None  # a channel closed meanwhile
    with pytest.raises(lost):
        channel.qos.restore_unacked()
    # The task is still in the unacknowledged set: any worker restores it after the visibility timeout.
    assert redis_client.hlen("unacked") == 1
    channel.qos._delivered.clear()  # nothing left for kombu's hand-back at interpreter exit
