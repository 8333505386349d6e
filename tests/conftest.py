"""Shared fixtures. Integration tests get real engines and real processes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engines import Engines, provide_engines
from tests.support.processes import Stack

_redis_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    with provide_engines(tmp_path_factory.mktemp("engines")) as found:
        print(f"\nintegration engines: {found.source}")
        yield found


def new_stack(engines: Engines, log_dir: Path, **extra_env: str) -> Stack:
    db_index = next(_redis_dbs)
    if db_index > 15:
        raise RuntimeError("more than 15 stacks in one session: Redis has 16 databases")
    stack = Stack(
        database_url=engines.database(f"conveyor_{uuid.uuid4().hex[:10]}"),
        redis_url=engines.redis(db_index),
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
