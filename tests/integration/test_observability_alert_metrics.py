"""The metrics two alerts need, after a known situation on a real stack.

- `conveyor_queue_oldest_job_age_seconds` (API): jobs queued with no worker
  show an age that grows, as old as the jobs; once a worker drains them, 0.
- `conveyor_reconciler_leases_requeued_total` (scheduler): a worker killed
  mid-job leaves an expiring lease; the scheduler requeues the job and counts it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import new_stack
from tests.support.engines import Engines, free_port
from tests.support.faults import held_by, query, wait_db
from tests.support.jobs import submit, wait_all_terminal
from tests.support.processes import wait_until

AGE = "conveyor_queue_oldest_job_age_seconds"
REQUEUED = "conveyor_reconciler_leases_requeued_total"
FAILED = "conveyor_reconciler_leases_failed_total"


def sample(url: str, name: str) -> float | None:
    """The unlabelled sample `name`, or None when the series is absent."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == name:
                assert found.labels == {}, found  # flat, as the alert rules expect
                return float(found.value)
    return None


def test_queue_age_grows_while_jobs_wait_and_is_zero_once_drained(
    engines: Engines, tmp_path: Path
) -> None:
    stack = new_stack(engines, tmp_path)
    try:
        stack.start_api()
        metrics = f"{stack.api_url}/metrics"
        wait_until(lambda: sample(metrics, AGE) == 0, 15, what="age 0 with an empty queue")

        submitted_at = time.monotonic()
        with stack.client(stack.create_key("age")) as client:
            ids = [submit(client, "sleep", {"ms": 10})["id"] for _ in range(3)]
            wait_until(lambda: (sample(metrics, AGE) or 0) > 0, 15, what="an age above 0")
            first = sample(metrics, AGE)
            time.sleep(1.5)
            second = sample(metrics, AGE)
            waited = time.monotonic() - submitted_at
            assert first is not None and second is not None
            assert second >= first + 1, (first, second)
            # The jobs' own wait, not some other clock: never older than they are.
            assert second <= waited + 1, (second, waited)

            stack.start_worker(concurrency=2)
            jobs = wait_all_terminal(client, ids, timeout=60)
            assert {job["status"] for job in jobs.values()} == {"succeeded"}
        wait_until(lambda: sample(metrics, AGE) == 0, 15, what="age 0 once drained")
    finally:
        stack.stop()


def test_scheduler_counts_a_lost_workers_lease_it_requeued(
    engines: Engines, tmp_path: Path
) -> None:
    stack = new_stack(engines, tmp_path, JOB_LEASE_SECONDS="2", RECONCILE_INTERVAL_SECONDS="0.5")
    try:
        stack.start_api()
        port = free_port()
        # An environment shared with the workers: the scheduler still counts in memory.
        shared_dir = tmp_path / "multiproc"
        shared_dir.mkdir()
        stack.start_scheduler(METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(shared_dir))
        metrics = f"http://127.0.0.1:{port}/metrics"
        assert sample(metrics, REQUEUED) == 0
        assert sample(metrics, FAILED) == 0

        doomed = stack.start_worker(concurrency=1)
        with stack.client(stack.create_key("lease")) as client:
            job = submit(client, "sleep", {"ms": 60_000}, max_attempts=3)
        wait_db(
            stack.database_url,
            lambda: len(held_by(stack.database_url, doomed)) == 1,
            timeout=30,
            what="the job running on the doomed worker",
        )
        doomed.kill_group()  # no more lease renewals: it expires within 2 s

        wait_until(lambda: (sample(metrics, REQUEUED) or 0) >= 1, 30, what="a requeue counted")
        assert sample(metrics, REQUEUED) == 1
        assert sample(metrics, FAILED) == 0
        assert list(shared_dir.iterdir()) == []
        # No worker is left: the requeued job waits for the next one.
        rows = query(stack.database_url, "SELECT status FROM jobs WHERE id = %s", job["id"])
        assert rows == [{"status": "queued"}]
    finally:
        stack.stop()
