"""`python -m conveyor.worker.scheduler`: the reconciler's clock. Each tick
queues delayed jobs that fell due, recovers lost work and applies retention.

Only one should run. If two do by mistake, a Postgres advisory lock lets one
work while the other waits; and even without it, claims make duplicate
messages harmless.

It serves the reconciler's counters on METRICS_PORT's /metrics (0: none).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

import redis
from sqlalchemy import text

from conveyor.common.db import make_sync_engine
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.settings import load_settings
from conveyor.common.tasks import make_celery_client
from conveyor.common.telemetry import configure_tracing
from conveyor.worker.metrics_server import serve_registry, use_single_process_mode
from conveyor.worker.reconciler import reconcile_once, reconciler_metrics
from conveyor.worker.settings import SchedulerSettings

SCHEDULER_LOCK_ID = 0x7363686564756C65  # "schedule"


def main() -> None:
    use_single_process_mode()  # one process, no files: before anything imports prometheus_client
    settings = load_settings(SchedulerSettings)
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing("conveyor-scheduler")  # re-published jobs' traces start here
    log = get_logger("conveyor.scheduler")
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if settings.metrics_port:
        serve_registry(settings.metrics_port, reconciler_metrics().registry)

    engine = make_sync_engine(settings, pool_size=2)
    celery = make_celery_client(settings, "conveyor-scheduler")
    broker = redis.Redis.from_url(settings.broker_url, socket_timeout=3, socket_connect_timeout=3)
    log.info("scheduler started", interval_s=settings.reconcile_interval_seconds)
    while not stop.is_set():
        tick_started = time.monotonic()
        try:
            with engine.connect() as lock_conn:
                got = lock_conn.execute(
                    text("SELECT pg_try_advisory_lock(:id)"), {"id": SCHEDULER_LOCK_ID}
                ).scalar()
                if got:
                    try:
                        reconcile_once(
                            engine,
                            celery,
                            broker,
                            queued_after_s=settings.reconcile_queued_after_seconds,
                            retention_s=settings.job_retention_seconds,
                        )
                    finally:
                        lock_conn.execute(
                            text("SELECT pg_advisory_unlock(:id)"), {"id": SCHEDULER_LOCK_ID}
                        )
                        lock_conn.commit()
        except Exception as exc:  # a database or broker blip: next tick tries again
            log.warning("reconcile pass failed", error=f"{type(exc).__name__}: {exc}")
        if settings.heartbeat_file:
            # The loop is alive, whatever the pass found: a stuck loop is what a
            # restart fixes, a database outage is not.
            Path(settings.heartbeat_file).touch()
        # A fixed rate, not a fixed pause: a delayed job is queued at most one
        # interval after its run_at, however long the pass took.
        elapsed = time.monotonic() - tick_started
        stop.wait(max(0.0, settings.reconcile_interval_seconds - elapsed))
    celery.close()
    engine.dispose()
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
