"""Shared fixtures. Integration tests get real engines and real processes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.engines import Engines, provide_engines, stop_on_signals
from tests.support.processes import Stack

# Redis db 0 is left alone; 1..15 are handed out in turn and flushed on reuse.
# Stacks are module-scoped, so far fewer than 15 are ever alive at once.
_redis_dbs = itertools.cycle(range(1, 16))


def pytest_configure(config: pytest.Config) -> None:
    # `make test` stopped with SIGTERM tears down like Ctrl-C: every fixture's
    # `finally` runs, so no stack, engine or container outlives the run.
    stop_on_signals()


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    with provide_engines(tmp_path_factory.mktemp("engines")) as found:
        print(f"\nintegration engines: {found.source}")
        yield found


def fresh_redis_url(engines: Engines) -> str:
    """A Redis database of its own (flushed), so stacks never share a queue."""
    url = engines.redis(next(_redis_dbs))
    redis.Redis.from_url(url).flushdb()
    return url


def new_stack(engines: Engines, log_dir: Path, **extra_env: str) -> Stack:
    stack = Stack(
        database_url=engines.database(f"conveyor_{uuid.uuid4().hex[:10]}"),
        redis_url=fresh_redis_url(engines),
        log_dir=log_dir,
        extra_env=extra_env,
    )
    stack.migrate()
    return stack


@pytest.fixture(scope="module")
def stack(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API, two worker processes and a scheduler on a fresh database."""
    running = new_stack(engines, tmp_path_factory.mktemp("stack"))
    try:
        running.start_api()
        running.start_worker(concurrency=2)
        running.start_scheduler()
        yield running
    finally:
        running.stop()
