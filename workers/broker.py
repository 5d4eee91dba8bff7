"""The Celery broker transport: kombu's Redis transport, with one failure on a lost connection mended.

When Redis goes away under a worker (a restart, a failover), Celery closes the consumer's connection and
reconnects. Work still under way on the old channel - giving its unacknowledged tasks back, a late
acknowledgement of a task that just finished - makes kombu build a new connection pool from a
connection that is no longer there, which raises ``AttributeError`` ('NoneType' object has no attribute
'hostname' / 'client'). That is no connection error, so Celery calls it unrecoverable and the worker
process EXITS: in the chaos suite's Redis restart, every worker gone, nothing was polled or applied again
(kombu issues #582 and #970 show the same path). Here the channel says what happened - its connection is
closed - as a connection error, which Celery handles as it handles any lost connection: the restore is
skipped and the acknowledgement logged as failed, the task stays in Redis's unacknowledged set (any
worker restores it after the visibility timeout, workers/app.py; the claims keep its writes to once),
and the worker reconnects.

Used through ``broker_transport`` for Redis brokers (workers/app.py: build_config).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class ChannelClosed(redis.ConnectionError):
    """The channel's broker connection is gone: kombu lists redis-py's ConnectionError among the
    transport's connection errors, so Celery treats this as the lost connection it is."""


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise ChannelClosed("the broker connection of this channel was closed (Redis went away)")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-any-return]


class Transport(kombu_redis.Transport):
    Channel = Channel
