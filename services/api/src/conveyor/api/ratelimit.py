"""A per-key rate limit, shared by every API replica through Redis.

Fixed one-minute windows: simple, and exact enough for protecting the queue.
Off when the limit is 0. If Redis is down the limit is not enforced: the
broker being down must not turn into 429s.
"""

from __future__ import annotations

import math
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api.problems import Problem


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, per_minute: int) -> None:
        self.redis = redis
        self.per_minute = per_minute

    async def check(self, key_id: uuid.UUID, now: float) -> None:
        if self.per_minute <= 0:
            return
        window = int(now // 60)
        counter = f"conveyor:ratelimit:{key_id}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, 120)
                count, _ = await pipe.execute()
        except RedisError:
            return
        if count > self.per_minute:
            retry_after = max(1, math.ceil((window + 1) * 60 - now))
            raise Problem(
                429,
                "Too Many Requests",
                f"Rate limit of {self.per_minute} requests per minute exceeded for this key.",
                headers={"Retry-After": str(retry_after)},
            )
