"""A job that runs several leases long keeps its lease: the worker renews it
while the handler works, so the reconciler (which requeues expired leases every
second here) never takes it away, and it succeeds on its first attempt. Short
jobs run before and between the long ones on the same pool processes."""

from __future__ import annotations

from pathlib import Path

from tests.support.faults import fault_bed, sleep_job, status_counts, submit_all, wait_for_jobs

LEASE_S = 2
LONG_MS = 5_000  # two and a half leases
SHORT_JOBS = 40


def test_long_jobs_keep_their_lease_and_run_once(tmp_path: Path) -> None:
    with fault_bed(tmp_path, JOB_LEASE_SECONDS=str(LEASE_S)) as bed:
        stack = bed.stack
        stack.start_api()
        stack.start_scheduler()
        worker = stack.start_worker(concurrency=2)
        key = stack.create_key("lease")
        bodies = [sleep_job(0)] * SHORT_JOBS + [sleep_job(LONG_MS)] * 2 + [sleep_job(0)] * 10
        ids = submit_all(stack.api_url, key, bodies)

        rows, _ = wait_for_jobs(bed.database_url, ids, timeout=60, what="long jobs")

        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(
            bed.database_url
        )
        assert {row["attempts"] for row in rows.values()} == {1}, [
            (row["result"], row["attempts"], row["error"]) for row in rows.values()
        ]
        output = worker.output()
        assert "lease lost" not in output
        assert "lease renewal failed" not in output
