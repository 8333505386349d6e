"""Fault: a whole worker (main process and its prefork children) is SIGKILLed
mid-run. Its leases stop being renewed, the reconciler requeues its jobs when
they expire, and every job still succeeds."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.faults import (
    fault_bed,
    held_by,
    sleep_job,
    status_counts,
    submit_all,
    wait_db,
    wait_for_jobs,
)

JOBS = 300
JOB_MS = 500
CONCURRENCY = 6


def test_sigkill_whole_worker_mid_run_every_job_still_succeeds(tmp_path: Path) -> None:
    with fault_bed(tmp_path) as bed:
        stack = bed.stack
        stack.start_api()
        stack.start_scheduler()
        doomed = stack.start_worker(concurrency=CONCURRENCY)
        survivor = stack.start_worker(concurrency=CONCURRENCY)
        key = stack.create_key("kill")
        ids = submit_all(stack.api_url, key, [sleep_job(JOB_MS) for _ in range(JOBS)])
        db = bed.database_url

        # Mid-run: the doomed worker holds a full set of running jobs, most are still to do.
        wait_db(
            db,
            lambda: len(held_by(db, doomed)) >= CONCURRENCY and status_counts(db)["succeeded"] > 0,
            timeout=30,
            what="the doomed worker running a full set of jobs",
        )
        doomed.kill_group()
        killed_at = time.monotonic()
        assert not doomed.alive()
        orphaned = held_by(db, doomed)
        in_flight = sum(
            n for status, n in status_counts(db).items() if status in ("queued", "running")
        )
        assert len(orphaned) >= 1, "the kill left no job behind: it did not hit mid-run"
        assert in_flight >= 200, f"only {in_flight} jobs in flight at the kill"

        # As a cluster restarts a dead pod, a replacement worker comes up.
        stack.start_worker(concurrency=CONCURRENCY)
        rows, _ = wait_for_jobs(db, ids, timeout=90, what="after SIGKILL")
        recovered_s = time.monotonic() - killed_at

        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(db)
        assert all(row["result"] == {"slept_ms": JOB_MS} for row in rows.values())
        for job in orphaned:
            row = rows[job["id"]]
            # The orphan ran again elsewhere: its dead attempt counted, the next one won.
            assert row["attempts"] == job["attempts"] + 1, (job, row)
            assert not row["worker_id"].startswith(f"worker-{doomed.popen.pid}@"), row
        assert survivor.alive()
        print(
            f"\nworker kill: {JOBS} jobs, {in_flight} in flight at the kill, "
            f"{len(orphaned)} orphaned running jobs; "
            f"all succeeded {recovered_s:.1f}s after the kill"
        )
