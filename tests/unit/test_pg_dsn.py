"""The API's asyncpg pool reads the same DATABASE_URL as everything else."""

from __future__ import annotations

import pytest

from conveyor.api.pg import asyncpg_dsn
from conveyor.api.settings import ApiSettings


@pytest.mark.parametrize(
    ("url", "dsn", "cache_size"),
    [
        ("postgres://u:p@db:5432/app", "postgresql://u:p@db:5432/app", None),
        (
            "postgresql+asyncpg://u:p@db/app?sslmode=require",
            "postgresql://u:p@db/app?sslmode=require",
            None,
        ),
        # SQLAlchemy's name for the PgBouncer setting: taken out of the URL, which
        # asyncpg would otherwise send to the server as an unknown setting.
        (
            "postgresql://u:p@db/app?prepared_statement_cache_size=0&sslmode=verify-full",
            "postgresql://u:p@db/app?sslmode=verify-full",
            0,
        ),
    ],
)
def test_dsn(url: str, dsn: str, cache_size: int | None) -> None:
    settings = ApiSettings(database_url=url, redis_url="redis://r:6379/0")  # type: ignore[arg-type]
    assert asyncpg_dsn(settings) == (dsn, cache_size)
