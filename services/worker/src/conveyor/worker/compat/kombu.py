"""kombu's Redis transport: two entries, both verified against kombu 5.7.x.

restore_unacked / ack / reject on a closed channel (`tolerate_lost_connection`)
    Upstream behaviour: when the connection to Redis drops, Celery closes the
    channel. Two things then touch that closed channel, and kombu raises
    AttributeError ('NoneType' object has no attribute 'hostname' / 'client'),
    which Celery treats as unrecoverable, so the whole worker exits:
      * `QoS.restore_unacked`, putting the prefetched-but-unacked messages back;
      * `QoS.ack` / `reject` for a job that finished after the connection was lost.
    Upstream issues: celery/kombu#582 (the same AttributeError from a closed
    channel), celery/kombu#970 (restore_unacked failing at shutdown), and
    celery/celery#10205 (a worker that stops after a broker connection reset).
    The entry lets both fail softly and clears the private `_delivered` map of
    the messages it could not restore. Nothing is lost: those messages stay in
    kombu's `unacked` hash until its visibility timeout, the reconciler
    re-publishes jobs still `queued` long before that, and a late duplicate of
    a finished job is a no-op claim. The worker then reconnects.

    Outside the verified range: not applied, one warning, and the worker keeps
    starting. Its absence loses no work (the same reconciler and visibility
    timeout recover every message), it only costs a worker restart on each
    broker outage, which the process manager (Kubernetes, `make up`'s runner)
    performs; refusing to start would be the greater outage.

one redis-py client per channel (`reuse_sync_clients`)
    Upstream behaviour: the private `Channel._create_client` builds a fresh
    `redis.Redis` for every synchronous call made through `conn_or_acquire`
    (recording each delivered message as unacked, and each ack). Building one
    copies redis-py's table of response callbacks, about 0.1 ms of CPU, twice
    per job in the worker's main process, which dispatches every job of every
    child (redis/redis-py#3624; no kombu issue found). The client holds no
    connection of its own (the channel's pool does, and hands one out per
    command), so a client built on the channel's current pool is reused; after
    a reconnect the channel has a new pool, and a new client is built on it.

    Outside the verified range: not applied, one warning; the worker is only slower.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from conveyor.common.compat import supported
from conveyor.common.logging import get_logger

log = get_logger(__name__)

KOMBU_RANGE = ("kombu", "5.7", "5.8")
RESTORE_ENTRY = "kombu.tolerate_lost_connection"
REUSE_ENTRY = "kombu.reuse_sync_clients"
_PATCHED = "conveyor_tolerates_lost_connection"
_REUSES = "conveyor_reuses_sync_client"
_CACHED = "conveyor_sync_client"
_LOST = (AttributeError, OSError, redis.RedisError)


def tolerate_lost_connection() -> bool:
    """Patch kombu's Redis QoS (idempotent). True when the patch is in place."""
    if not supported(RESTORE_ENTRY, *KOMBU_RANGE):
        return False
    qos: Any = kombu_redis.QoS
    if getattr(qos, _PATCHED, False):
        return True
    restore, ack, reject = qos.restore_unacked, qos.ack, qos.reject

    def restore_unacked(self: Any, client: Any = None) -> None:
        try:
            restore(self, client)
        except _LOST as exc:
            delivered = self._delivered
            log.warning(
                "could not restore unacked messages: the broker connection is gone; "
                "the reconciler re-publishes their jobs",
                count=len(delivered),
                error=f"{type(exc).__name__}: {exc}",
            )
            delivered.clear()

    def ack_or_forget(original: Any) -> Any:
        def wrapper(self: Any, delivery_tag: Any, *args: Any, **kwargs: Any) -> None:
            try:
                original(self, delivery_tag, *args, **kwargs)
            except _LOST as exc:
                log.warning(
                    "could not ack on a closed broker channel; a redelivery will be a no-op claim",
                    error=f"{type(exc).__name__}: {exc}",
                )
                virtual.QoS.ack(self, delivery_tag)  # forget it locally

        return wrapper

    qos.restore_unacked = restore_unacked
    qos.ack = ack_or_forget(ack)
    qos.reject = ack_or_forget(reject)
    setattr(qos, _PATCHED, True)
    return True


def reuse_sync_clients() -> bool:
    """Patch kombu's Redis Channel (idempotent). True when the patch is in place."""
    if not supported(REUSE_ENTRY, *KOMBU_RANGE):
        return False
    channel: Any = kombu_redis.Channel
    if getattr(channel, _REUSES, False):
        return True
    create = channel._create_client

    def create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return create(self, asynchronous=True)
        pool = self.pool
        client = self.__dict__.get(_CACHED)
        if client is None or client.connection_pool is not pool:
            client = create(self)
            self.__dict__[_CACHED] = client
        return client

    channel._create_client = create_client
    setattr(channel, _REUSES, True)
    return True
