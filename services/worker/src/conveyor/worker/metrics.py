"""The worker's Prometheus metrics and its per-process observability hooks.

Celery's prefork pool runs jobs in child processes, so the metrics use
prometheus_client's multiprocess mode:

- the main process points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory
  (its own under /tmp, or the one the environment names, emptied) before the
  pool forks; every child writes its samples to its own files there;
- the main process serves `/metrics` on `METRICS_PORT` (0 turns it off) from a
  registry holding only a `MultiProcessCollector`, which sums the children's
  files: a child that exits or is replaced keeps its counts (never lost), and
  no process's samples are read twice (never doubled);
- live-process gauges drop a child's files when it exits (`mark_process_dead`),
  or at the next scrape if it was killed without a chance to say so.

`install(app)` wires the signals; `run_job` calls `job_started` / `job_finished`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, Task, signals
from opentelemetry import trace

from conveyor.common.logging import get_logger
from conveyor.common.tasks import RUN_JOB_TASK
from conveyor.common.telemetry import (
    PUBLISHED_AT_HEADER,
    check_tracing_config,
    configure_tracing,
    shutdown_tracing,
    stamp_publish_time,
)
from conveyor.worker.attempts import ClaimedJob

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

log = get_logger("conveyor.worker.metrics")


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


# --- multiprocess directory and HTTP server (the worker's main process) -------


def prepare_multiprocess_dir() -> Path:
    """Before the pool forks: an empty PROMETHEUS_MULTIPROC_DIR, and multiprocess values.

    The environment's directory is emptied (files left by a previous run would
    be added to this run's counts); without one, a private directory under the
    temp dir (/tmp, the chart's one writable mount) is made and removed at exit,
    so several workers on one host never share files.
    """
    from prometheus_client import values

    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="conveyor-worker-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
        main_pid = os.getpid()

        def remove() -> None:
            if os.getpid() == main_pid:  # never from a child that inherited the hook
                shutil.rmtree(path, ignore_errors=True)

        atexit.register(remove)
    # prometheus_client picks its value class when first imported; choose the
    # multiprocess one now, whatever imported it earlier.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_dead_processes(path: Path) -> None:
    """Live gauges of children killed without `worker_process_shutdown` (SIGKILL, OOM)."""
    from prometheus_client import multiprocess

    pids: set[int] = set()
    for mode in _LIVE_MODES:
        for file in path.glob(f"gauge_{mode}_*.db"):
            with contextlib.suppress(ValueError):
                pids.add(int(file.stem.rsplit("_", 1)[1]))
    for pid in pids:
        if not _pid_alive(pid):
            multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


class _PruningMultiProcessCollector:
    def __init__(self, path: Path) -> None:
        from prometheus_client import multiprocess

        self.path = path
        self.inner = multiprocess.MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Any]:
        prune_dead_processes(self.path)
        samples: Iterable[Any] = self.inner.collect()  # type: ignore[no-untyped-call]
        return samples


def start_metrics_server(port: int, path: Path) -> bool:
    """Serve the children's summed metrics on `port`. False if it cannot bind
    (the worker runs on; a second worker on one host needs its own METRICS_PORT)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(_PruningMultiProcessCollector(path))
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        log.warning("metrics server not started", port=port, error=str(exc))
        return False
    log.info("metrics server started", port=port, path="/metrics")
    return True


# --- hooks -------------------------------------------------------------------


def _published_at(task: Task[Any, Any]) -> float | None:
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
    sent = _published_at(task)
    if sent is not None:
        metrics.queue_wait.labels(job.kind).observe(max(0.0, time.time() - sent))


def job_finished(kind: str, outcome: str | None, duration_s: float) -> None:
    """`outcome` is run_job's: succeeded, failed, queued (a retry), or None (lost)."""
    status = {"queued": "retry", None: "lost"}.get(outcome, outcome or "lost")
    metrics = worker_metrics()
    metrics.jobs_finished.labels(kind, status).inc()
    metrics.job_duration.labels(kind, status).observe(duration_s)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Celery's loggers that describe one task from the main process, where no job
# context is bound: "Task ... received", "Task handler raised error: WorkerLostError".
_TASK_LOGGERS = ("celery.worker.strategy", "celery.worker.request", "celery.app.trace")


class JobIdFromTaskArgs(logging.Filter):
    """Adds `job_id` to Celery's own lines about a `conveyor.run_job` message."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict) and data.get("name") == RUN_JOB_TASK:
            found = _UUID.search(str(data.get("args", "")))
            if found and not hasattr(record, "job_id"):
                record.job_id = found.group(0)
        return True


def _import_before_fork() -> None:
    """What every pool child imports when it configures tracing, imported once
    here instead: the children inherit it. Each child spent ~40 ms of CPU on
    this import; 32 children starting at once kept the first jobs waiting."""
    import opentelemetry.instrumentation.celery  # noqa: F401


def install(app: Celery) -> None:
    """Connect the worker's observability to Celery's signals. Called by
    `create_celery_app` in the main process; the hooks run later, where noted."""
    check_tracing_config()  # a bad OTEL_* stops the main process, not each child
    _import_before_fork()
    stamp_publish_time()  # jobs handed back at shutdown are published from here
    for name in _TASK_LOGGERS:
        task_logger = logging.getLogger(name)
        if not any(isinstance(f, JobIdFromTaskArgs) for f in task_logger.filters):
            task_logger.addFilter(JobIdFromTaskArgs())

    @signals.worker_init.connect(weak=False)
    def _before_pool_starts(**_: Any) -> None:
        # Main process, before the pool forks.
        path = prepare_multiprocess_dir()
        port = app.conveyor_settings.metrics_port  # type: ignore[attr-defined]
        if port:
            start_metrics_server(port, path)

    @signals.worker_process_init.connect(weak=False)
    def _child_started(**_: Any) -> None:
        # In each new child, after the fork: its own tracer (docs/design.md, "Factories").
        configure_tracing("conveyor-worker")
        worker_metrics().processes.set(1)

    @signals.worker_process_shutdown.connect(weak=False)
    def _child_exiting(**_: Any) -> None:
        shutdown_tracing()  # children leave with os._exit: flush spans now
        from prometheus_client import multiprocess

        with contextlib.suppress(Exception):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    @signals.task_prerun.connect(weak=False)
    def _task_starts(args: Any = None, **_: Any) -> None:
        # Celery's own log lines for this task (its outcome line) carry the job id too.
        if args:
            structlog.contextvars.bind_contextvars(job_id=str(args[0]))
        worker_metrics().jobs_running.set(1)

    @signals.task_postrun.connect(weak=False)
    def _task_ends(**_: Any) -> None:
        worker_metrics().jobs_running.set(0)
        structlog.contextvars.unbind_contextvars("job_id")
