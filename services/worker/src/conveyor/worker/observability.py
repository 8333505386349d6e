"""The worker's per-process observability, wired to Celery's signals: tracing
after each fork, multiprocess metrics, and the job id in log context.

`install(app)` is called by `create_celery_app` in the main process; the hooks
run later, where noted.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from conveyor.common.publish_time import stamp_publish_time
from conveyor.common.telemetry import configure_tracing, shutdown_tracing
from conveyor.common.tracing_config import check_tracing_config
from conveyor.worker.log_context import add_job_id_filters, bind_job_id, unbind_job_id
from conveyor.worker.metrics import serve_from_the_start, worker_metrics
from conveyor.worker.metrics_server import (
    mark_this_process_dead,
    prepare_multiprocess_dir,
    start_metrics_server,
)


def import_before_fork() -> None:
    """What every pool child imports when it configures tracing, imported once
    here instead: the children inherit it. Each child spent ~40 ms of CPU on
    this import; 32 children starting at once kept the first jobs waiting."""
    import opentelemetry.instrumentation.celery  # noqa: F401


def install(app: Celery) -> None:
    """Connect the worker's observability to Celery's signals."""
    check_tracing_config()  # a bad OTEL_* stops the main process, not each child
    import_before_fork()
    stamp_publish_time()  # jobs handed back at shutdown are published from here
    add_job_id_filters()
    # Now, before Celery's command line loads its plugins: Flower's imports
    # prometheus_client, which reads PROMETHEUS_MULTIPROC_DIR once, at import.
    path = prepare_multiprocess_dir()

    @signals.worker_init.connect(weak=False)
    def before_pool_starts(**_: Any) -> None:
        # Main process, before the pool forks.
        serve_from_the_start()
        port = app.conveyor_settings.metrics_port  # type: ignore[attr-defined]
        if port:
            start_metrics_server(port, path)

    @signals.worker_process_init.connect(weak=False)
    def child_started(**_: Any) -> None:
        # In each new child, after the fork: its own tracer (docs/design.md, "Factories").
        configure_tracing("conveyor-worker")
        worker_metrics().processes.set(1)

    @signals.worker_process_shutdown.connect(weak=False)
    def child_exiting(**_: Any) -> None:
        shutdown_tracing()  # children exit without atexit handlers: flush spans now
        mark_this_process_dead()

    @signals.task_prerun.connect(weak=False)
    def task_starts(args: Any = None, **_: Any) -> None:
        bind_job_id(args)
        worker_metrics().jobs_running.set(1)

    @signals.task_postrun.connect(weak=False)
    def task_ends(**_: Any) -> None:
        worker_metrics().jobs_running.set(0)
        unbind_job_id()
