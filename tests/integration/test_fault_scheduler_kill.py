"""Fault: the scheduler is SIGKILLed while it queues and publishes a burst of
delayed jobs that fell due together. Some are still `scheduled`, some are
`queued` with no message yet. A replacement scheduler finishes the burst and
re-publishes the orphans; every job runs exactly once: one claim (attempts 1)
and one "job started" in the worker's log, never before its run_at."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import redis

from tests.support.faults import fault_bed, query, status_counts, wait_db, wait_for_jobs

JOBS = 2000
DELAY_S = 4


def started_per_job(worker_log: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in worker_log.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("message") == "job started":
                counts[event["job_id"]] += 1
    return counts


def test_sigkill_scheduler_mid_publish_every_delayed_job_runs_exactly_once(
    tmp_path: Path,
) -> None:
    with fault_bed(tmp_path) as bed:
        stack, db = bed.stack, bed.database_url
        stack.start_api()
        doomed = stack.start_scheduler()
        key = stack.create_key("sched-kill")
        ids: list[str] = []
        with httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            for _ in range(JOBS // 1000):
                body = {
                    "jobs": [
                        {"kind": "sleep", "params": {"ms": 0}, "delay_seconds": DELAY_S}
                        for _ in range(1000)
                    ]
                }
                response = client.post("/v1/jobs:batch", json=body)
                assert response.status_code == 202, response.text
                ids += [job["id"] for job in response.json()["items"]]
        assert status_counts(db)["scheduled"] == JOBS

        # No worker yet: what the broker holds is exactly what was published.
        wait_db(
            db,
            lambda: status_counts(db)["scheduled"] < JOBS,
            timeout=DELAY_S + 10,
            what="the scheduler queueing the burst",
        )
        doomed.kill_group()
        counts = status_counts(db)
        depth = int(redis.Redis.from_url(stack.redis_url).llen("conveyor.jobs"))
        unpublished = counts["queued"] - depth
        assert counts["scheduled"] + counts["queued"] == JOBS, counts
        assert counts["scheduled"] > 0 or unpublished > 0, (
            f"the kill came after the whole burst was published: {counts}, depth {depth}"
        )

        killed_at = time.monotonic()
        stack.start_scheduler()
        worker = stack.start_worker(concurrency=4)
        rows, _ = wait_for_jobs(db, ids, timeout=180, what="after the scheduler's SIGKILL")
        recovered_s = time.monotonic() - killed_at

        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(db)
        assert {row["attempts"] for row in rows.values()} == {1}
        started = started_per_job(worker.output())
        assert set(started) == set(ids)
        assert set(started.values()) == {1}, [i for i, n in started.items() if n > 1][:5]
        early = query(
            db,
            "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s::uuid[]) AND started_at < run_at",
            ids,
        )
        assert early == [{"n": 0}]
        print(
            f"\nscheduler kill: {JOBS} delayed jobs; at the kill {counts['scheduled']} scheduled,"
            f" {counts['queued']} queued of which {unpublished} had no message yet;"
            f" all ran once, {recovered_s:.1f}s after the kill"
        )
