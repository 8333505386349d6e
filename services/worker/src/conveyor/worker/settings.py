"""Settings for the worker and the scheduler processes."""

from __future__ import annotations

from pydantic import Field

from conveyor.common.settings import Settings


class WorkerSettings(Settings):
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    # SIGTERM waits this long for running jobs, then requeues them (soft shutdown).
    # Celery waits the whole time if any job runs, so the default fits inside
    # `docker stop`'s 10 s; the chart sets its own, with a longer grace period.
    worker_shutdown_grace_seconds: float = Field(default=8, ge=0, le=3600)
    metrics_port: int = Field(default=9808, ge=0, le=65535)
    heartbeat_file: str = "/tmp/conveyor-worker.heartbeat"  # noqa: S108 - /tmp is the one writable dir


class SchedulerSettings(Settings):
    reconcile_interval_seconds: float = Field(default=5, gt=0, le=3600)
    # A job still queued this long probably lost its message: publish it again.
    reconcile_queued_after_seconds: float = Field(default=30, gt=0, le=86400)
    # The reconciler's counters on /metrics; 0 turns it off. The worker's default
    # port: in a pod of its own each serves "metrics" on 9808.
    metrics_port: int = Field(default=9808, ge=0, le=65535)
    # Touched once a tick, for an exec liveness probe; empty (the default) writes none.
    heartbeat_file: str = ""
    # Finished jobs older than this are deleted. Fractions are fine (0.5 = 12 h;
    # 0.001 = 86.4 s, for soak tests); 0 keeps every job forever.
    job_retention_days: float = Field(default=7, ge=0, le=36500)

    @property
    def job_retention_seconds(self) -> float | None:
        return self.job_retention_days * 86400 if self.job_retention_days else None
