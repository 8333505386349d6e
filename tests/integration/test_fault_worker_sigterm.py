"""Fault: the worker gets SIGTERM mid-run (a rolling update, a scale-down).

SIGTERM starts Celery's soft shutdown: running jobs get
WORKER_SHUTDOWN_GRACE_SECONDS to finish; those still running then are stopped
and handed back to the queue without using up an attempt. The worker exits 0
within its grace time, and no job is lost.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.support.faults import (
    FAST_TIMINGS,
    ExitWatch,
    fault_bed,
    held_by,
    query,
    sleep_job,
    status_counts,
    submit_all,
    wait_db,
    wait_for_jobs,
)

GRACE_S = float(FAST_TIMINGS["WORKER_SHUTDOWN_GRACE_SECONDS"])
# A deadline, not a speed target: Celery stops its pool (~2-3 s, even idle),
# then the worker hands jobs back; a shared, loaded machine needs more room.
EXIT_DEADLINE_S = GRACE_S + 20
CONCURRENCY = 4
LONG_MS = 10_000  # outlives the grace time: must be handed back
SHORT_MS = 300  # finishes within it
JOBS = 200


def test_sigterm_worker_finishes_or_requeues_in_flight_jobs_and_exits_0(tmp_path: Path) -> None:
    with fault_bed(tmp_path) as bed:
        stack, db = bed.stack, bed.database_url
        stack.start_api()
        stack.start_scheduler()
        stopping = stack.start_worker(concurrency=CONCURRENCY)
        key = stack.create_key("sigterm")
        # FIFO queue: the two long jobs go first, so the worker is running them at the signal.
        long_ids = submit_all(stack.api_url, key, [sleep_job(LONG_MS)] * 2, threads=1)
        short_ids = submit_all(stack.api_url, key, [sleep_job(SHORT_MS)] * (JOBS - 2))
        ids = long_ids + short_ids

        def running_long_and_short_jobs() -> set[str] | None:
            held = {job["id"] for job in held_by(db, stopping)}
            return held if set(long_ids) < held else None

        # The very set that met the condition: a second look could fall in the
        # few ms between one short job's end and the next one's claim.
        in_flight_before: set[str] = wait_db(
            db, running_long_and_short_jobs, timeout=30, what="long and short jobs running"
        )
        live = status_counts(db)["queued"] + status_counts(db)["running"]
        assert live >= 150, f"only {live} jobs in flight at the signal"
        # The fault must hit the long jobs with more work left than the grace time.
        (age,) = query(
            db,
            "SELECT max(extract(epoch FROM now() - started_at))::float AS s FROM jobs "
            "WHERE id = ANY(%s::uuid[])",
            long_ids,
        )
        assert age["s"] + GRACE_S + 1 < LONG_MS / 1000, f"long jobs already ran {age['s']:.1f}s"

        watch = ExitWatch(stopping)
        signalled_at = time.monotonic()
        stopping.signal(signal.SIGTERM)
        # The replacement comes up while the old worker drains, as in a rolling update.
        stack.start_worker(concurrency=CONCURRENCY * 2)
        code, took_s = watch.result(since=signalled_at, timeout=EXIT_DEADLINE_S)
        output = stopping.output()
        assert code == 0, f"worker exited {code}:\n{output[-3000:]}"
        # It gave its running jobs the grace time before handing the long ones back.
        assert took_s >= GRACE_S, f"worker exited {took_s:.1f}s after SIGTERM"

        rows, _ = wait_for_jobs(db, ids, timeout=90, what="after SIGTERM")
        done_s = time.monotonic() - signalled_at
        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(db)
        # Nothing ran twice to completion and no lease had to expire: every job
        # took exactly one counted attempt.
        assert {row["attempts"] for row in rows.values()} == {1}
        prefix = f"worker-{stopping.popen.pid}@"
        for job_id in long_ids:
            # Handed back at the end of the grace time and finished by the replacement.
            assert not rows[job_id]["worker_id"].startswith(prefix), rows[job_id]
            assert rows[job_id]["result"] == {"slept_ms": LONG_MS}
        finished_in_grace = [
            job_id
            for job_id in in_flight_before - set(long_ids)
            if rows[job_id]["worker_id"].startswith(prefix)
        ]
        assert finished_in_grace, "no short in-flight job finished during the grace time"
        assert '"released running jobs on shutdown"' in output
        print(
            f"\nworker SIGTERM: {JOBS} jobs, {live} in flight; exited 0 after {took_s:.1f}s "
            f"(grace {GRACE_S:.0f}s); {len(finished_in_grace)} finished in grace, "
            f"{len(long_ids)} long jobs handed back; all succeeded {done_s:.1f}s after the signal"
        )
