"""What the API builds at startup and closes at shutdown."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conveyor.api.jobs.waiters import JobWaiters
from conveyor.api.metrics import ApiMetrics
from conveyor.api.pg import asyncpg_dsn, create_pg_pool
from conveyor.api.principal import VerifiedKeys
from conveyor.api.publisher import JobPublisher
from conveyor.api.ratelimit import RateLimiter
from conveyor.api.settings import ApiSettings
from conveyor.common.db import make_async_engine, make_async_sessionmaker
from conveyor.common.tasks import make_celery_client


@dataclass
class AppState:
    settings: ApiSettings
    engine: AsyncEngine  # SQLAlchemy: cancels, retries, stats, probes
    sessions: async_sessionmaker[AsyncSession]
    pg: asyncpg.Pool  # asyncpg: authentication, submits and job reads (see pg.py)
    redis: aioredis.Redis
    publisher: JobPublisher
    rate_limiter: RateLimiter
    metrics: ApiMetrics
    verified_keys: VerifiedKeys
    job_waiters: JobWaiters  # GET /v1/jobs/{id}?wait=: one LISTEN connection

    @classmethod
    async def build(cls, settings: ApiSettings, metrics: ApiMetrics) -> AppState:
        engine = make_async_engine(settings)
        redis = aioredis.Redis.from_url(
            settings.broker_url,
            socket_timeout=2,
            socket_connect_timeout=2,
            # One immediate retry replaces a pooled connection Redis dropped
            # (a restart); more would hold requests up while it is down.
            retry=Retry(NoBackoff(), 1),
        )
        pg = await create_pg_pool(settings)  # connects lazily
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_async_sessionmaker(engine),
            pg=pg,
            redis=redis,
            rate_limiter=RateLimiter(redis, settings.rate_limit_per_minute),
            publisher=JobPublisher(
                redis,
                make_celery_client(settings, "conveyor-api"),
                settings.publish_backoff_seconds,
            ),
            metrics=metrics,
            verified_keys=VerifiedKeys(),
            job_waiters=JobWaiters(asyncpg_dsn(settings)[0], metrics.job_waiters),
        )

    async def close(self) -> None:
        await self.job_waiters.close()
        self.publisher.close()
        await self.redis.aclose()
        await self.pg.close()
        await self.engine.dispose()
