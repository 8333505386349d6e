"""Settings for the worker and the scheduler processes."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from conveyor.common.queues import all_queues, kind_routes, parse_kind_queues, parse_queue_list
from conveyor.common.settings import Settings


class WorkerSettings(Settings):
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    # SIGTERM waits this long for running jobs, then requeues them (soft shutdown).
    # Celery waits the whole time if any job runs, so the default fits inside
    # `docker stop`'s 10 s; the chart sets its own, with a longer grace period.
    worker_shutdown_grace_seconds: float = Field(default=8, ge=0, le=3600)
    metrics_port: int = Field(default=9808, ge=0, le=65535)
    heartbeat_file: str = "/tmp/conveyor-worker.heartbeat"  # noqa: S108 - /tmp is the one writable dir
    # The queues this worker serves, `cpu,io`; empty serves every queue (one pool for all).
    worker_queues: str = ""

    @field_validator("worker_queues")
    @classmethod
    def _check_worker_queues(cls, value: str, info: ValidationInfo) -> str:
        named = parse_queue_list(value)
        try:
            known = all_queues(kind_routes(parse_kind_queues(info.data.get("kind_queues", ""))))
        except ValueError:  # KIND_QUEUES itself is bad, and says so
            return value
        unknown = sorted(set(named) - set(known))
        if unknown:
            raise ValueError(
                f"names {', '.join(unknown)}, which no kind is routed to "
                f"(queues: {', '.join(known)}; see KIND_QUEUES)"
            )
        return value

    @property
    def served_queues(self) -> tuple[str, ...]:
        """The queues this worker consumes: WORKER_QUEUES, or every queue."""
        return parse_queue_list(self.worker_queues) or all_queues(self.queue_routes)


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
