"""`conveyor_queue_oldest_job_age_seconds`: how long the oldest runnable queued job has waited.

The age is `now() - min(coalesce(run_after, created_at))` over queued jobs whose
`run_after` is unset or past; 0 when none wait. No labels: one flat series per
API replica (the alert takes `max by (namespace)`).

Design: a small task in the API's lifespan reads it from Postgres every
`REFRESH_SECONDS` on the API's own async engine, and the collector only reports
the last reading. Chosen over a query per scrape because:

- a scrape never touches Postgres, however many scrapers there are, and the
  event loop never blocks (no second, synchronous driver or pool in the API);
- the reading is extrapolated at scrape time on the monotonic clock, so the age
  grows smoothly between reads and never depends on this host's clock agreeing
  with Postgres's;
- a reading older than `STALE_AFTER_SECONDS` (Postgres away) drops the series,
  as `conveyor_queue_depth` does when Redis is away, instead of freezing it.

The read is meant as one index probe at any table size: `ix_jobs_queued_runnable_at`
indexes `coalesce(run_after, created_at)` over queued rows only, and a `min()`
under a bound on that same expression reads the index's first entry. (Under
statistics taken while nothing was queued the planner may scan the backlog
instead: see docs/operate/capacity.md, "Each claim scanned the whole backlog".) The bound
`<= now()` is the "run_after unset or past" rule: an unset run_after falls back
to created_at, which is never in the future.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from conveyor.common.logging import get_logger
from conveyor.common.models import JobStatus, sql_statuses

REFRESH_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0
QUERY_TIMEOUT_SECONDS = 2.0

OLDEST_RUNNABLE_AGE = text(
    f"""
    SELECT extract(epoch FROM now() - min(coalesce(run_after, created_at)))
    FROM jobs
    WHERE status = {sql_statuses(JobStatus.QUEUED)}
      AND coalesce(run_after, created_at) <= now()
    """  # noqa: S608 - constants only
)

log = get_logger("conveyor.api.metrics")


class QueueAgeCollector(Collector):
    """Reports the last reading of the oldest runnable job's age, aged since it was read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()  # record() on the loop, collect() on a scrape thread
        self.reading: tuple[float | None, float] | None = None  # (age or None, read at)

    def record(self, age: float | None) -> None:
        """`age` in seconds, or None when no job waits."""
        with self.lock:
            self.reading = (age, self.clock())

    def family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "conveyor_queue_oldest_job_age_seconds",
            "Seconds the oldest queued job has been runnable without running; 0 when none waits.",
        )

    def describe(self) -> Iterable[Metric]:
        return [self.family()]

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            reading = self.reading
        if reading is None:
            return []
        age, read_at = reading
        elapsed = self.clock() - read_at
        if elapsed > STALE_AFTER_SECONDS:
            return []
        family = self.family()
        family.add_metric([], 0.0 if age is None else age + elapsed)
        return [family]


async def read_oldest_runnable_age(engine: AsyncEngine) -> float | None:
    async with asyncio.timeout(QUERY_TIMEOUT_SECONDS), engine.connect() as conn:
        age = (await conn.execute(OLDEST_RUNNABLE_AGE)).scalar()
    return None if age is None else max(0.0, float(age))


async def refresh_queue_age(
    engine: AsyncEngine, collector: QueueAgeCollector, interval: float = REFRESH_SECONDS
) -> None:
    """Run until cancelled: one reading every `interval` seconds."""
    failing = False
    while True:
        try:
            collector.record(await read_oldest_runnable_age(engine))
            failing = False
        except Exception as exc:  # Postgres away: the reading goes stale, the series absent
            if not failing:  # once per outage, not every few seconds
                log.warning("queue age not read", error=f"{type(exc).__name__}: {exc}")
            failing = True
        await asyncio.sleep(interval)
