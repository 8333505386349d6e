"""Factor VIII, Concurrency: scale out via the process model.

- N worker processes take jobs in parallel: 2 worker instances x concurrency 2
  run 40 sleep jobs of 200 ms; the job records name at least 3 distinct
  worker ids from both instances, and their started/finished intervals overlap
  at least 3 deep;
- the API and worker process counts change independently: a worker is added
  while one API runs, then an API is added while the workers stay; each
  configuration runs jobs.
Related: tests/integration/test_demo_scaling.py and `make demo-scaling`
(throughput as workers are added), tests/deploy/test_helm_scaling.py.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.jobs import submit, wait_all_terminal
from tests.support.processes import Stack

JOBS = 40
JOB_MS = 200


def counts(stack: Stack) -> dict[str, int]:
    alive = [p.name for p in stack.procs if p.alive()]
    return {"web": alive.count("web"), "worker": alive.count("worker")}


def run_jobs(stack: Stack, key: str, n: int, ms: int) -> list[dict]:  # type: ignore[type-arg]
    with stack.client(key) as client:  # the most recently started API
        ids = [submit(client, "sleep", {"ms": ms})["id"] for _ in range(n)]
        jobs = wait_all_terminal(client, ids, timeout=60)
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    return list(jobs.values())


def max_overlap(jobs: list[dict]) -> int:  # type: ignore[type-arg]
    events = []
    for job in jobs:
        events.append((datetime.fromisoformat(job["started_at"]), 1))
        events.append((datetime.fromisoformat(job["finished_at"]), -1))
    depth = best = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts on ties
        depth += step
        best = max(best, depth)
    return best


def test_overlap_counts_parallel_intervals() -> None:
    serial = [
        {"started_at": "2026-01-01T00:00:00", "finished_at": "2026-01-01T00:00:01"},
        {"started_at": "2026-01-01T00:00:01", "finished_at": "2026-01-01T00:00:02"},
    ]
    assert max_overlap(serial) == 1
    parallel = [
        *serial,
        {"started_at": "2026-01-01T00:00:00.5", "finished_at": "2026-01-01T00:00:03"},
    ]
    assert max_overlap(parallel) == 2


def test_workers_run_in_parallel_and_scale_apart_from_the_api(
    engines: Engines, tmp_path: Path
) -> None:
    stack = new_stack(engines, tmp_path)
    try:
        stack.start_api()
        stack.start_worker(concurrency=2)
        key = stack.create_key("concurrency")
        assert counts(stack) == {"web": 1, "worker": 1}
        run_jobs(stack, key, 4, 10)

        # More workers, the same single API.
        second = stack.start_worker(concurrency=2)
        assert counts(stack) == {"web": 1, "worker": 2}
        jobs = run_jobs(stack, key, JOBS, JOB_MS)
        worker_ids = {job["worker_id"] for job in jobs}
        nodes = {worker_id.split("/")[0] for worker_id in worker_ids}
        assert len(worker_ids) >= 3, worker_ids
        assert len(nodes) == 2, nodes
        assert any(node.startswith(f"worker-{second.popen.pid}@") for node in nodes), nodes
        assert max_overlap(jobs) >= 3, "the jobs did not run in parallel"

        # More APIs, the same two workers.
        stack.start_api()
        assert counts(stack) == {"web": 2, "worker": 2}
        later = run_jobs(stack, key, 8, 10)  # through the new API
        assert {job["worker_id"].split("/")[0] for job in later} <= nodes
    finally:
        stack.stop()
