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

from tests.support.faults import Load, Outcome, fault_bed, status_counts, wait_for_jobs

DOWN_S = 6.0  # at least this long, and until enough submissions came back meanwhile
MIN_IN_OUTAGE = 20
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

            def outage_long_and_busy_enough(done: list[Outcome]) -> bool:
                answered = [o for o in done if o.started >= down_at]
                return time.monotonic() - down_at >= DOWN_S and len(answered) >= MIN_IN_OUTAGE

            load.wait_outcomes(outage_long_and_busy_enough, 60, "submissions during the outage")
            during = status_counts(db)
            bed.start_redis()
            up_at = time.monotonic()
            load.wait_accepted(max(MIN_JOBS, len(load.accepted()) + 60), timeout=60)
        outcomes = load.outcomes

        failures = [o for o in outcomes if o.status != 202]
        assert not failures, f"{len(failures)} submissions not accepted: {failures[:5]}"
        # (wait_outcomes above already required MIN_IN_OUTAGE answers in the outage.)
        in_outage = [o for o in outcomes if o.started >= down_at and o.ended <= up_at]
        # None waited for Redis to come back: every submission sent in the
        # outage's first half was answered before its end.
        waited = [o for o in outcomes if down_at <= o.started < down_at + DOWN_S / 2]
        held = [o for o in waited if o.ended > up_at]
        assert waited and not held, f"{len(held)} submissions waited for Redis: {held[:3]}"
        assert during["queued"] > 0, f"no job waited as queued during the outage: {during}"
        overlapping = [o for o in outcomes if o.started < up_at and o.ended > down_at]
        slowest = max(o.ended - o.started for o in overlapping)

        ids = load.accepted()
        assert len(ids) >= MIN_JOBS
        rows, took = wait_for_jobs(db, ids, timeout=90, what="after Redis came back")
        assert {row["status"] for row in rows.values()} == {"succeeded"}, status_counts(db)
        print(
            f"\nbroker down {up_at - down_at:.1f}s: {len(ids)} jobs accepted "
            f"({len(in_outage)} during the outage, slowest {slowest * 1000:.0f} ms, "
            f"{during['queued']} queued at its end); all succeeded {took:.1f}s after "
            "the load stopped"
        )
