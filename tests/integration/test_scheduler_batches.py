"""The scheduler's two bulk statements against real Postgres: each touches at
most its batch of rows (so each transaction stays short), takes only what is
due or expired, and two of them at once never take the same row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine

from conveyor.common.settings import _with_driver
from conveyor.worker import repository
from tests.support.engines import Engines
from tests.support.faults import query
from tests.support.processes import Stack


@pytest.fixture
def engine(engines: Engines, tmp_path: Path) -> Iterator[Engine]:
    stack = Stack(
        database_url=engines.database(f"batches_{uuid.uuid4().hex[:8]}"),
        redis_url=engines.redis(0),
        log_dir=tmp_path,
    )
    stack.migrate()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'batches')", (uuid.uuid4(),))
    made = create_engine(_with_driver(stack.database_url, "psycopg"))
    made.url_for_tests = stack.database_url  # type: ignore[attr-defined]
    yield made
    made.dispose()


def insert(engine: Engine, n: int, status: str, *, run_at: str, finished_at: str) -> None:
    with psycopg.connect(engine.url_for_tests, autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts,"
            f" run_at, finished_at) SELECT gen_random_uuid(), (SELECT id FROM tenants),"
            f" 'sleep', '{{}}', %s, 0, 3, {run_at}, {finished_at}"
            " FROM generate_series(1, %s)",
            (status, n),
        )


def counts(engine: Engine) -> dict[str, int]:
    rows = query(engine.url_for_tests, "SELECT status, count(*) AS n FROM jobs GROUP BY status")  # type: ignore[attr-defined]
    return {row["status"]: int(row["n"]) for row in rows}


def test_due_jobs_are_queued_a_bounded_batch_at_a_time(engine: Engine) -> None:
    insert(engine, 1200, "scheduled", run_at="now() - interval '1 second'", finished_at="NULL")
    insert(engine, 50, "scheduled", run_at="now() + interval '1 hour'", finished_at="NULL")
    first = repository.queue_due_scheduled(engine, 500)
    assert len(first) == 500
    assert counts(engine) == {"scheduled": 750, "queued": 500}
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: repository.queue_due_scheduled(engine, 500), range(2)))
    ids = [job.id for batch in both for job in batch]
    assert len(ids) == len(set(ids)) == 700, [len(batch) for batch in both]
    assert repository.queue_due_scheduled(engine, 500) == []
    assert counts(engine) == {"scheduled": 50, "queued": 1200}
    [row] = query(
        engine.url_for_tests,  # type: ignore[attr-defined]
        "SELECT count(*) AS n FROM jobs WHERE status = 'queued' AND run_after = run_at",
    )
    assert row["n"] == 1200  # the queue age counts from the due time


def test_expired_jobs_are_deleted_a_bounded_batch_at_a_time(engine: Engine) -> None:
    old = "now() - interval '2 days'"
    insert(engine, 1200, "succeeded", run_at="NULL", finished_at=old)
    insert(engine, 10, "failed", run_at="NULL", finished_at="now()")  # young
    insert(engine, 10, "queued", run_at="NULL", finished_at="NULL")  # live
    assert repository.delete_expired(engine, 86400, 500) == 500
    with ThreadPoolExecutor(2) as pool:
        deleted = list(pool.map(lambda _: repository.delete_expired(engine, 86400, 500), range(2)))
    assert sum(deleted) == 700, deleted
    assert repository.delete_expired(engine, 86400, 500) == 0
    assert counts(engine) == {"failed": 10, "queued": 10}
