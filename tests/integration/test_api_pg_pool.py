"""The API's asyncpg pool skips asyncpg's reset round trip after clean use, and
still does the full reset after a failed or cut-off statement (api/pg.py)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from conveyor.api.pg import create_pg_pool
from conveyor.api.settings import ApiSettings
from tests.support.engines import Engines

_NAME = "SELECT current_setting('application_name')"


def _pool(engines: Engines) -> asyncpg.Pool:
    settings = ApiSettings(
        database_url=engines.database(f"pool_{uuid.uuid4().hex[:8]}"),  # type: ignore[arg-type]
        redis_url="redis://r:6379/0",  # type: ignore[arg-type]
        db_pool_size=1,  # one connection: each acquire gets the same one back
    )
    return create_pg_pool(settings)


def test_reset_runs_only_after_a_failure(engines: Engines) -> None:
    async def scenario() -> None:
        async with _pool(engines) as pool:
            async with pool.acquire() as conn:
                await conn.execute("SET application_name = 'clean'")
            async with pool.acquire() as conn:
                # No reset after clean use: the session setting is still there.
                assert await conn.fetchval(_NAME) == "clean"
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await conn.fetchval("SELECT 1 / 0")
            async with pool.acquire() as conn:
                # The failure brought asyncpg's full reset back: RESET ALL ran.
                assert await conn.fetchval(_NAME) != "clean"
                assert await conn.fetchval("SELECT 41 + 1") == 42

    asyncio.run(scenario())


def test_a_statement_cut_off_mid_flight_leaves_a_working_pool(engines: Engines) -> None:
    async def scenario() -> None:
        async with _pool(engines) as pool:
            async with pool.acquire() as conn:
                await conn.execute("SET application_name = 'cut'")
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(5)"), 0.2)
            async with pool.acquire() as conn:
                assert not conn.is_in_transaction()
                assert await conn.fetchval(_NAME) != "cut"
                assert await conn.fetchval("SELECT 41 + 1") == 42

    asyncio.run(scenario())
