"""The Celery application factory for the worker."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task, signals

from conveyor.common.db import make_sync_engine
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.tasks import RUN_JOB_TASK, celery_config, publish_run_job
from conveyor.worker import observability, repository
from conveyor.worker.compat.celery import say_through_logging
from conveyor.worker.compat.kombu import reuse_sync_clients, tolerate_lost_connection
from conveyor.worker.presence import HeartbeatStep
from conveyor.worker.run_job import run_job
from conveyor.worker.runtime import get_runtime
from conveyor.worker.settings import WorkerSettings

log = get_logger("conveyor.worker")


def release_node_jobs(app: Celery, nodename: str) -> None:
    """After the pool stops, jobs this node still holds go back to the queue now,
    instead of waiting for their leases to run out. Safe to call twice."""
    engine = make_sync_engine(app.conveyor_settings, pool_size=1)  # type: ignore[attr-defined]
    try:
        released = repository.release_worker_jobs(engine, f"{nodename}/")
        for job in released:
            publish_run_job(app, job.id, job.kind, job.params)
        if released:
            log.info("released running jobs on shutdown", count=len(released))
    except Exception as exc:  # the reconciler's lease expiry is the backstop
        log.warning("could not release jobs on shutdown", error=str(exc))
    finally:
        engine.dispose()


def _release_on_shutdown(app: Celery) -> None:
    # Celery sends worker_shutdown only on a warm shutdown; SIGTERM's soft
    # (cold) shutdown skips it, so `python -m conveyor.worker` also calls
    # release_node_jobs once the worker has stopped, whichever way it stopped.
    @signals.worker_shutdown.connect(weak=False)
    def release(sender: Any = None, **_: Any) -> None:
        nodename = getattr(sender, "hostname", None)
        if nodename:
            release_node_jobs(app, nodename)


# Celery's per-task INFO lines ("Task ... received", "Task ... succeeded in"):
# "job started" and "job finished" say the same with the job id, kind, attempt
# and trace ids, so at INFO they would double the log volume and cost the main
# process and each child ~0.1 ms of CPU per job. LOG_LEVEL=DEBUG brings them back;
# their warnings and errors (a lost worker, an unregistered task) always show.
CELERY_PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def configure_worker_logging(settings: WorkerSettings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    level = logging.getLevelName(settings.log_level)
    per_task_level = level if level == logging.DEBUG else max(level, logging.WARNING)
    for name in CELERY_PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(per_task_level)


def create_celery_app(settings: WorkerSettings) -> Celery:
    app = Celery("conveyor-worker", set_as_current=True)
    app.conf.update(celery_config(settings))
    app.conf.update(
        worker_concurrency=settings.worker_concurrency,
        worker_soft_shutdown_timeout=settings.worker_shutdown_grace_seconds,
    )
    app.conveyor_settings = settings  # type: ignore[attr-defined]
    observability.install(app)  # tracing after fork, multiprocess /metrics on METRICS_PORT

    @app.task(name=RUN_JOB_TASK, bind=True)
    def _run_job(self: Task[Any, Any], job_id: str) -> None:
        run_job(self, job_id)

    app.steps["worker"].add(HeartbeatStep)

    @signals.setup_logging.connect(weak=False)
    def keep_our_logging(**_: Any) -> None:
        # Connecting this stops Celery from installing its own handlers.
        configure_worker_logging(settings)

    @signals.worker_init.connect(weak=False)
    def resolve_backend_before_fork(**_: Any) -> None:
        # Main process, before the pool forks. Celery resolves the result
        # backend (ours is disabled) at a child's first task, by scanning every
        # installed package's entry points: ~20-30 ms of CPU, which 32 children
        # paid at once with their first jobs. Resolved here, they inherit it.
        resolved = app.backend
        log.debug("result backend resolved before fork", backend=type(resolved).__name__)

    @signals.worker_process_init.connect(weak=False)
    def build_child_runtime(**_: Any) -> None:
        runtime = get_runtime(app)
        runtime.interrupt.install()  # a cancel can stop this child's handler
        runtime.db.open()

    _release_on_shutdown(app)
    say_through_logging()  # compat entries: each checks the installed version
    tolerate_lost_connection()
    reuse_sync_clients()
    return app
