"""The worker's Prometheus metrics: what they count, and the calls that count.

Celery's prefork pool runs jobs in child processes, so the metrics live in
prometheus_client's multiprocess mode (metrics_server.py serves their sum).
`run_job` calls `job_started` / `job_finished`; observability.py keeps the
process gauges.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Task
from opentelemetry import trace

from conveyor.common.publish_time import PUBLISHED_AT_HEADER
from conveyor.worker.attempts import ClaimedJob

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class WorkerMetrics:
    jobs_started: Any
    jobs_finished: Any
    job_duration: Any
    queue_wait: Any
    processes: Any
    jobs_running: Any


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """The metric objects, built on first use (after `prepare_multiprocess_dir`).

    They are registered nowhere: in multiprocess mode the served registry reads
    the files, and registering them too would count every sample twice.
    """
    from prometheus_client import Counter, Gauge, Histogram

    return WorkerMetrics(
        jobs_started=Counter(
            "conveyor_jobs_started_total",
            "Job attempts claimed and started by a worker, by kind.",
            ["kind"],
            registry=None,
        ),
        jobs_finished=Counter(
            "conveyor_jobs_finished_total",
            "Job attempts finished, by kind and status: succeeded; failed (for good);"
            " retry (failed, queued again with backoff); lost (the lease went to another attempt).",
            ["kind", "status"],
            registry=None,
        ),
        job_duration=Histogram(
            "conveyor_job_duration_seconds",
            "Run time of one job attempt (handler and result write), by kind and status.",
            ["kind", "status"],
            buckets=_DURATION_BUCKETS,
            registry=None,
        ),
        queue_wait=Histogram(
            "conveyor_job_queue_wait_seconds",
            "Time a job's message waited for a worker: from its publish (or its retry's"
            " ETA, if later) to the claim, by kind.",
            ["kind"],
            buckets=_WAIT_BUCKETS,
            registry=None,
        ),
        processes=Gauge(
            "conveyor_worker_processes",
            "Live prefork pool processes (each runs one job at a time).",
            multiprocess_mode="livesum",
            registry=None,
        ),
        jobs_running=Gauge(
            "conveyor_jobs_running",
            "Jobs running now, i.e. busy pool processes.",
            multiprocess_mode="livesum",
            registry=None,
        ),
    )


def serve_from_the_start() -> None:
    """In the main process, before the pool forks: the live gauges at 0 from this
    process. Until a child writes its first sample the directory holds no file, and
    /metrics would answer with an empty body; now it says 0 processes, 0 running.
    The main process is alive as long as the worker, so its zeros are never pruned
    and add nothing to the children's sum."""
    metrics = worker_metrics()
    metrics.processes.set(0)
    metrics.jobs_running.set(0)


def published_at(task: Task[Any, Any]) -> float | None:
    """When the task's message was published, or its ETA if later (epoch seconds)."""
    request = task.request
    try:
        sent = float(getattr(request, PUBLISHED_AT_HEADER, None) or 0) or None
    except (TypeError, ValueError):
        sent = None
    if sent is None:
        return None
    eta = getattr(request, "eta", None)
    if eta:
        with contextlib.suppress(TypeError, ValueError):
            eta_ts = (eta if isinstance(eta, datetime) else datetime.fromisoformat(eta)).timestamp()
            sent = max(sent, eta_ts)
    return sent


def job_started(task: Task[Any, Any], job: ClaimedJob) -> None:
    """After a successful claim, inside the task's run span."""
    span = trace.get_current_span()
    if span.is_recording():
        # Find a job's trace by its id (Jaeger/Tempo tag search: conveyor.job_id=...).
        span.set_attributes(
            {
                "conveyor.job_id": str(job.id),
                "conveyor.kind": job.kind,
                "conveyor.attempt": job.attempt,
            }
        )
    metrics = worker_metrics()
    metrics.jobs_started.labels(job.kind).inc()
    sent = published_at(task)
    if sent is not None:
        metrics.queue_wait.labels(job.kind).observe(max(0.0, time.time() - sent))


def job_finished(kind: str, outcome: str | None, duration_s: float) -> None:
    """`outcome` is run_job's: succeeded, failed, cancelled, queued (a retry), or None (lost)."""
    status = {"queued": "retry", None: "lost"}.get(outcome, outcome or "lost")
    metrics = worker_metrics()
    metrics.jobs_finished.labels(kind, status).inc()
    metrics.job_duration.labels(kind, status).observe(duration_s)
