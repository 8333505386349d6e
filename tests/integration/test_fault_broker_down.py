"""Fault: Redis (the broker) is down for more than 5 s while clients keep submitting.

The API commits each job to Postgres before it publishes, and a failed publish
is not the client's problem: it keeps answering 202 and the jobs wait as
`queued`. Redis comes back empty (its queue was in memory); the reconciler sees
queued jobs the broker does not hold and publishes them again, so every job
completes.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.faults import Load, fault_bed, status_counts, wait_for_jobs

DOWN_S = 6.0
MIN_JOBS = 200


def test_broker_down_api_keeps_accepting_and_every_job_completes(tmp_path: Path) -> None:
    with fault_bed(tmp_path) as bed:
        stack, db = bed.stack, bed.database_url
        stack.start_api()
        stack.start_scheduler()
        stack.start_worker(concurrency=4)
        key = stack.create_key("broker-down")

        with Load(stack.api_url, key, threads=4, interval_s=0.03, job_ms=20) as load:
            load.wait_accepted(60, timeout=30)
            bed.stop_redis()
            down_at = time.monotonic()
            time.sleep(DOWN_S)
            during = status_counts(db)
            bed.start_redis()
            up_at = time.monotonic()
            load.wait_accepted(max(MIN_JOBS, len(load.accepted()) + 60), timeout=60)
        outcomes = load.outcomes

        assert up_at - down_at >= 5
        failures = [o for o in outcomes if o.status != 202]
        assert not failures, f"{len(failures)} submissions not accepted: {failures[:5]}"
        in_outage = [o for o in outcomes if o.started >= down_at and o.ended <= up_at]
        assert len(in_outage) >= 20, f"only {len(in_outage)} submissions during the outage"
        slowest = max(o.ended - o.started for o in in_outage)
        assert slowest < 5, f"a submission took {slowest:.1f}s while Redis was down"
        assert during["queued"] > 0, f"no job waited as queued during the outage: {during}"

        ids = load.accepted()
        assert len(ids) >= MIN_JOBS
        rows, waited = wait_for_jobs(db, ids, timeout=90, what="after Redis came back")
        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(db)
        print(
            f"\nbroker down {up_at - down_at:.1f}s: {len(ids)} jobs accepted "
            f"({len(in_outage)} during the outage, slowest {slowest * 1000:.0f} ms, "
            f"{during['queued']} queued at its end); all succeeded {waited:.1f}s after "
            "the load stopped"
        )
