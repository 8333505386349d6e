"""One redis-py client per kombu channel, instead of one per broker call.

kombu's Redis transport builds a fresh `redis.Redis` for every synchronous call
it makes through `Channel.conn_or_acquire`: recording each delivered message as
unacked, and each ack. Building one copies redis-py's table of response
callbacks, about 0.1 ms of CPU, twice per job in the worker's main process,
which dispatches every job of every child. The client holds no connection of
its own (the channel's pool does, and hands one out per command), so a client
built on the channel's current pool can be reused; after a reconnect the
channel has a new pool, and a new client is built on it.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

_PATCHED = "_conveyor_reuses_sync_client"
_CACHED = "_conveyor_sync_client"


def reuse_sync_clients() -> None:
    channel: Any = kombu_redis.Channel
    if getattr(channel, _PATCHED, False):
        return
    create = channel._create_client

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return create(self, asynchronous=True)
        pool = self.pool
        client = self.__dict__.get(_CACHED)
        if client is None or client.connection_pool is not pool:
            client = create(self)
            self.__dict__[_CACHED] = client
        return client

    channel._create_client = _create_client
    setattr(channel, _PATCHED, True)
