"""A job attempt's SQL against real Postgres: the claim is atomic, every later
write is fenced on the attempt, and a connection that Postgres dropped is
replaced (once) without the job noticing."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.worker import attempts
from conveyor.worker.pg import Connections
from tests.support.engines import Engines
from tests.support.processes import Stack


@pytest.fixture(scope="module")
def database_url(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> str:
    stack = Stack(
        database_url=engines.database(f"attempts_{uuid.uuid4().hex[:8]}"),
        redis_url=engines.redis(0),
        log_dir=Path(tmp_path_factory.mktemp("attempts")),
    )
    stack.migrate()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'attempts')", (uuid.uuid4(),))
    return stack.database_url


@pytest.fixture
def db(database_url: str) -> Iterator[Connections]:
    yield Connections(database_url)


def new_job(database_url: str, max_attempts: int = 3) -> uuid.UUID:
    job_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts)"
            " SELECT %s, id, 'sleep', '{\"ms\": 0}', 'queued', 0, %s FROM tenants LIMIT 1",
            (job_id, max_attempts),
        )
    return job_id


def row(database_url: str, job_id: uuid.UUID) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT status, attempts, worker_id, result, error, lease_expires_at, run_after,"
            " started_at, finished_at FROM jobs WHERE id = %s",
            (job_id,),
        )
        names = [c.name for c in cur.description or []]
        found = cur.fetchone()
        assert found is not None
        return dict(zip(names, found, strict=True))


def test_claim_once_then_only_the_holder_writes_the_outcome(
    db: Connections, database_url: str
) -> None:
    job_id = new_job(database_url)
    job = attempts.claim(db, job_id, "w1@h/1", 30)
    assert job is not None and job.kind == "sleep" and job.params == {"ms": 0}
    assert job.attempt == 1 and job.max_attempts == 3
    running = row(database_url, job_id)
    assert running["status"] == "running" and running["lease_expires_at"] is not None

    assert attempts.claim(db, job_id, "w2@h/2", 30) is None  # a duplicate delivery
    assert attempts.renew_lease(db, job, 30)
    impostor = attempts.ClaimedJob(job_id, "sleep", {}, 1, 3, "w2@h/2")
    assert not attempts.succeed(db, impostor, {"slept_ms": 0})
    assert attempts.succeed(db, job, {"slept_ms": 0})
    assert not attempts.succeed(db, job, {"slept_ms": 1})  # terminal never changes
    assert not attempts.renew_lease(db, job, 30)
    assert attempts.claim(db, job_id, "w3@h/3", 30) is None

    done = row(database_url, job_id)
    assert done["status"] == "succeeded" and done["result"] == {"slept_ms": 0}
    assert done["lease_expires_at"] is None and done["finished_at"] is not None


def test_fail_retries_with_backoff_then_fails_for_good(db: Connections, database_url: str) -> None:
    job_id = new_job(database_url, max_attempts=2)
    first = attempts.claim(db, job_id, "w1@h/1", 30)
    assert first is not None
    assert attempts.fail(db, first, "flaky", retry_in_s=5.0) == "queued"
    queued = row(database_url, job_id)
    assert queued["status"] == "queued" and queued["error"] == "flaky"
    assert queued["run_after"] is not None and queued["lease_expires_at"] is None

    second = attempts.claim(db, job_id, "w1@h/1", 30)
    assert second is not None and second.attempt == 2
    assert attempts.fail(db, first, "stale attempt", retry_in_s=None) is None  # fenced
    assert attempts.fail(db, second, "flaky again", retry_in_s=5.0) == "failed"  # out of attempts
    assert row(database_url, job_id)["status"] == "failed"
    assert attempts.claim(db, job_id, "w1@h/1", 30) is None


def test_a_dropped_connection_is_replaced_once(db: Connections, database_url: str) -> None:
    job_id = new_job(database_url)
    job = attempts.claim(db, job_id, "w1@h/1", 30)
    assert job is not None
    # What a Postgres restart does to every open connection.
    with psycopg.connect(database_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
        ).fetchone()
    assert killed and killed[0] >= 1
    assert attempts.succeed(db, job, {"slept_ms": 0})
    assert row(database_url, job_id)["status"] == "succeeded"


def test_a_failing_statement_is_not_retried(db: Connections) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.execute("UPDATE no_such_table SET x = 1", {})
    assert db.execute("SELECT 1", {}) == (1, (1,))  # the connection stays usable


class _TimeLimit(Exception):
    """Stands for Celery's SoftTimeLimitExceeded, raised from a signal handler."""


def test_a_statement_cut_off_mid_flight_leaves_no_stuck_connection(db: Connections) -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(_TimeLimit):
            db.execute("SELECT pg_sleep(2)", {})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    started = time.monotonic()
    assert db.execute("SELECT 1", {}) == (1, (1,))  # a new connection, not one mid-query
    assert time.monotonic() - started < 1.5


def test_a_claim_reads_one_row_whatever_the_backlog_and_statistics(
    engines: Engines, tmp_path: Path
) -> None:
    """Statistics taken while nothing was queued (here: VACUUM ANALYZE over
    finished jobs only) must not turn each claim into a scan of the backlog."""
    stack = Stack(
        database_url=engines.database(f"claimplan_{uuid.uuid4().hex[:8]}"),
        redis_url=engines.redis(0),
        log_dir=tmp_path,
    )
    stack.migrate()
    insert = (
        "INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts,"
        " finished_at) SELECT gen_random_uuid(), %s, 'sleep', '{}', %s, 0, 3,"
        " CASE WHEN %s = 'succeeded' THEN now() END FROM generate_series(1, %s)"
    )
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        tenant = uuid.uuid4()
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'plan')", (tenant,))
        conn.execute(insert, (tenant, "succeeded", "succeeded", 20_000))
        conn.execute("VACUUM (ANALYZE) jobs")
        conn.execute(insert, (tenant, "queued", "queued", 3_000))
        last = conn.execute("SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1").fetchone()
        assert last is not None
        conn.execute("BEGIN")
        explain = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + attempts._CLAIM,
            {"id": last[0], "worker": "w@h/1", "lease": 30.0},
        ).fetchone()
        conn.execute("ROLLBACK")
    assert explain is not None
    scan = explain[0][0]["Plan"]["Plans"][0]  # the row source under the UPDATE
    examined = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
    print(
        f"claim at 3,000 queued: {scan['Node Type']} on {scan.get('Index Name')}, "
        f"{examined} rows examined, {scan['Shared Hit Blocks']} buffers"
    )
    assert examined == 1, scan
    assert scan["Shared Hit Blocks"] + scan["Shared Read Blocks"] < 20, scan
