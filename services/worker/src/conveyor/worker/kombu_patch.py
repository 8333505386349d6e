"""A workaround for kombu's Redis transport losing the worker on a broker outage.

When the connection to Redis drops, Celery closes the channel. Two things then
touch that closed channel, and kombu 5.7 raises AttributeError for both
('NoneType' object has no attribute 'hostname' / 'client'), which Celery
treats as unrecoverable, so the whole worker exits:
  * putting the prefetched-but-unacked messages back, and
  * acking a job that finished after the connection was lost.
We let both fail softly. Nothing is lost: those messages stay in kombu's
`unacked` hash until its visibility timeout, the reconciler re-publishes jobs
still `queued` long before that, and a late duplicate of a finished job is a
no-op claim. The worker then reconnects like any Celery worker.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from conveyor.common.logging import get_logger

log = get_logger(__name__)
_PATCHED = "_conveyor_tolerates_lost_connection"
_LOST = (AttributeError, OSError, redis.RedisError)


def tolerate_lost_connection_on_restore() -> None:
    qos: Any = kombu_redis.QoS
    if getattr(qos, _PATCHED, False):
        return
    restore, ack, reject = qos.restore_unacked, qos.ack, qos.reject

    def restore_unacked(self: Any, client: Any = None) -> None:
        try:
            restore(self, client)
        except _LOST as exc:
            log.warning(
                "could not restore unacked messages: the broker connection is gone; "
                "the reconciler re-publishes their jobs",
                count=len(self._delivered),
                error=f"{type(exc).__name__}: {exc}",
            )
            self._delivered.clear()

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
