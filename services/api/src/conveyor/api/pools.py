"""Queue depths and worker pools as the broker shows them, for /v1/stats and /metrics.

Each queue's depth is the LLEN of its list; each worker process keeps a presence
key (worker/presence.py) whose value names the queues it serves, and a pool is
known by that set of queues (`cpu`, `cpu,default,io`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from conveyor.common.queues import list_name, pool_name
from conveyor.common.tasks import WORKER_PRESENCE_PREFIX


@dataclass(frozen=True)
class BrokerView:
    depths: dict[str, int]  # queue -> messages waiting
    queue_workers: dict[str, int]  # queue -> worker processes serving it
    pools: dict[str, int]  # pool -> worker processes online

    @property
    def total_depth(self) -> int:
        return sum(self.depths.values())

    @property
    def total_workers(self) -> int:
        return sum(self.pools.values())


def served_by(raw: bytes | str | None, every_queue: Sequence[str]) -> tuple[str, ...]:
    """The queues a presence value names. A worker from before pools wrote its
    concurrency alone, and served the one queue every kind shared: all of them."""
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("queues"), list):
        return tuple(sorted(str(q) for q in value["queues"]))
    return tuple(every_queue)


def summarize(
    queues: Sequence[str], depths: Sequence[int], presences: Iterable[bytes | str | None]
) -> BrokerView:
    queue_workers = dict.fromkeys(queues, 0)
    pools: dict[str, int] = {}
    for raw in presences:
        served = served_by(raw, queues)
        pools[pool_name(served)] = pools.get(pool_name(served), 0) + 1
        for queue in served:
            queue_workers[queue] = queue_workers.get(queue, 0) + 1
    return BrokerView(dict(zip(queues, map(int, depths), strict=True)), queue_workers, pools)


_PRESENCE = f"{WORKER_PRESENCE_PREFIX}*"


async def read_async(client: aioredis.Redis, queues: Sequence[str]) -> BrokerView:
    depths = [await client.llen(list_name(q)) for q in queues]
    keys = [key async for key in client.scan_iter(match=_PRESENCE, count=100)]
    values = await client.mget(keys) if keys else []
    # A key that expired between SCAN and MGET is a worker gone: not counted.
    return summarize(queues, depths, [v for v in values if v is not None])


def read_sync(client: redis.Redis, queues: Sequence[str]) -> BrokerView:
    depths = [int(client.llen(list_name(q))) for q in queues]
    keys = list(client.scan_iter(match=_PRESENCE, count=100))
    values = client.mget(keys) if keys else []
    return summarize(queues, depths, [v for v in values if v is not None])
