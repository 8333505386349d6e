"""Fault: Postgres restarts under load.

While it is down the API answers 503 with Retry-After (a problem document,
never a 500); its pool reconnects by itself as soon as Postgres is back; and
every job the API accepted (202) before, during or after reaches `succeeded`:
a worker that lost its claim or its result mid-write leaves the job queued or
leased, and the reconciler runs it again.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from tests.support.faults import Load, Outcome, fault_bed, status_counts, wait_for_jobs

DOWN_S = 3.0
RECOVERED_STREAK = 100  # this many 202s in a row after the restart: recovered
RECOVERY_DEADLINE_S = 60.0  # generous; the test prints the measured recovery
MIN_JOBS = 200


def streak_start(outcomes: list[Outcome], since: float, length: int) -> float | None:
    """When the first run of `length` consecutive 202s (in completion order,
    among requests sent after `since`) began, or None if there is none yet."""
    run_start, run_length = 0.0, 0
    for outcome in outcomes:
        if outcome.started < since:
            continue
        if outcome.status != 202:
            run_length = 0
            continue
        run_start = outcome.started if run_length == 0 else min(run_start, outcome.started)
        run_length += 1
        if run_length == length:
            return run_start
    return None


def test_database_restart_503_then_recovers_and_no_accepted_job_is_lost(tmp_path: Path) -> None:
    with fault_bed(tmp_path) as bed:
        stack, db = bed.stack, bed.database_url
        stack.start_api()
        stack.start_scheduler()
        stack.start_worker(concurrency=4)
        key = stack.create_key("db-restart")

        with Load(stack.api_url, key, threads=4, interval_s=0.03, job_ms=20) as load:
            load.wait_accepted(100, timeout=30)
            some_job = load.accepted()[0]
            bed.stop_postgres()
            down_at = time.monotonic()
            reads: list[tuple[str, int, str | None]] = []
            with stack.client(key) as reader:
                while time.monotonic() < down_at + DOWN_S:
                    for method, path in [
                        ("GET", f"/v1/jobs/{some_job}"),
                        ("GET", "/v1/jobs?status=queued"),
                        ("GET", "/v1/stats"),
                        ("POST", f"/v1/jobs/{some_job}/cancel"),
                    ]:
                        answer = reader.request(method, path)
                        reads.append((path, answer.status_code, answer.headers.get("retry-after")))
                    time.sleep(0.2)
            restart_at = time.monotonic()
            bed.start_postgres()
            up_at = time.monotonic()
            load.wait_outcomes(
                lambda done: streak_start(done, up_at, RECOVERED_STREAK) is not None,
                RECOVERY_DEADLINE_S,
                f"{RECOVERED_STREAK} 202s in a row after the restart",
            )
            # Keep the load on after recovery, to see that it lasts.
            load.wait_accepted(max(MIN_JOBS, len(load.accepted()) + 100), timeout=60)
        outcomes = load.outcomes

        assert not [o for o in outcomes if o.error], [o.error for o in outcomes if o.error][:5]
        server_errors = [o for o in outcomes if o.status and o.status >= 500 and o.status != 503]
        assert not server_errors, f"{len(server_errors)} 5xx other than 503: {server_errors[:3]}"
        assert {o.status for o in outcomes} <= {202, 503}, {o.status for o in outcomes}

        unavailable = [o for o in outcomes if o.status == 503]
        assert unavailable, "no 503 while Postgres was down: the fault did not bite"
        for o in unavailable:
            assert o.retry_after and int(o.retry_after) > 0, o
            assert o.content_type and o.content_type.startswith("application/problem+json"), o
        # Whatever was sent while Postgres was fully down was turned away with 503.
        fully_down = [o for o in outcomes if o.started >= down_at and o.ended <= restart_at]
        assert fully_down and {o.status for o in fully_down} == {503}, {
            o.status for o in fully_down
        }
        assert {(status, bool(retry)) for _, status, retry in reads} == {(503, True)}, reads
        # It recovered by itself, and for good: once a run of 202s began, nothing but 202.
        recovered_at = streak_start(outcomes, up_at, RECOVERED_STREAK)
        assert recovered_at is not None
        late = [o for o in outcomes if o.started >= recovered_at]
        assert len(late) >= RECOVERED_STREAK + 100, len(late)
        assert {o.status for o in late} == {202}, Counter(o.status for o in late)
        first_ok = min(o.ended for o in outcomes if o.status == 202 and o.started >= up_at)
        last_503 = max(o.ended for o in unavailable)

        ids = load.accepted()
        assert len(ids) >= MIN_JOBS
        rows, waited = wait_for_jobs(db, ids, timeout=90, what="after the restart")
        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(db)
        print(
            f"\ndatabase restart: down {restart_at - down_at:.1f}s, start() took "
            f"{up_at - restart_at:.1f}s; {len(unavailable)} answers were 503 + Retry-After, "
            f"0 were 500 ({len(reads)} reads, all 503); first 202 {first_ok - up_at:.2f}s "
            f"and last 503 {last_503 - up_at:.2f}s after Postgres was back, "
            f"{RECOVERED_STREAK} 202s in a row from {recovered_at - up_at:.2f}s on; "
            f"{len(ids)} jobs accepted, "
            f"all succeeded ({waited:.1f}s after the load stopped)"
        )


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def test_server_shutting_down_or_starting_up_maps_to_503_not_500() -> None:
    """The narrow windows of a restart, deterministically: Postgres refuses new
    connections with SQLSTATE 57P03 while it shuts down or starts up, and
    asyncpg's error reaches SQLAlchemy as a bare DBAPIError."""
    from sqlalchemy import exc as sa_exc

    from conveyor.api.problems import _is_database_unavailable

    for sqlstate, message in [
        ("57P03", "the database system is shutting down"),
        ("57P03", "the database system is starting up"),
        ("57P01", "terminating connection due to administrator command"),
        ("08006", "connection failure"),
        ("53300", "sorry, too many clients already"),
    ]:
        error = sa_exc.DBAPIError("SELECT 1", None, _DriverError(message, sqlstate))
        assert _is_database_unavailable(error), (sqlstate, message)
    not_an_outage = sa_exc.DBAPIError("SELECT 1", None, _DriverError("syntax", "42601"))
    assert not _is_database_unavailable(not_an_outage)
