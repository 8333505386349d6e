"""Engine and session factories. Nothing here connects at import time."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from conveyor.common.settings import Settings
from conveyor.common.telemetry import instrument_engine


def make_async_engine(settings: Settings) -> AsyncEngine:
    """The API's engine for cancels, retries and stats: asyncpg, a bounded pool,
    and stale connections dropped. (Auth, submits and job reads have their own asyncpg
    pool of the same size; see conveyor/api/pg.py and docs/operate/capacity.md.)"""
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
    )
    instrument_engine(engine.sync_engine)  # SQL spans, when this process exports traces
    return engine


def make_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_sync_engine(settings: Settings, *, pool_size: int = 2) -> Engine:
    """The worker's and the scripts' engine: psycopg 3, small, one per process."""
    engine = create_engine(
        settings.sync_database_url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
    instrument_engine(engine)  # SQL spans, when this process exports traces
    return engine


def make_sync_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
