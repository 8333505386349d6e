"""The Celery application factory for the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, Task, bootsteps, signals

from conveyor.common.db import make_sync_engine
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.tasks import RUN_JOB_TASK, celery_config, publish_run_job
from conveyor.worker import repository
from conveyor.worker.run_job import run_job
from conveyor.worker.runtime import get_runtime
from conveyor.worker.settings import WorkerSettings

log = get_logger("conveyor.worker")


class HeartbeatStep(bootsteps.StartStopStep):
    """Touches a file from the worker's event loop; the healthcheck reads its age."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        path = Path(parent.app.conveyor_settings.heartbeat_file)
        path.touch()
        self.tref = parent.timer.call_repeatedly(5.0, path.touch, priority=10)

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()


def _release_on_shutdown(app: Celery) -> None:
    """After the pool stops, jobs this node still holds go back to the queue now,
    instead of waiting for their leases to run out."""

    @signals.worker_shutdown.connect(weak=False)
    def release(sender: Any = None, **_: Any) -> None:
        nodename = getattr(sender, "hostname", None)
        if not nodename:
            return
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


def _say_through_logging() -> None:
    """Celery prints shutdown notices straight to stdout; make them JSON log events."""
    import celery.apps.worker as celery_worker

    def say(msg: str, file: Any = None) -> None:
        log.info(msg.strip())

    celery_worker.safe_say = say  # type: ignore[attr-defined]


def create_celery_app(settings: WorkerSettings) -> Celery:
    app = Celery("conveyor-worker", set_as_current=True)
    app.conf.update(celery_config(settings))
    app.conf.update(
        worker_concurrency=settings.worker_concurrency,
        worker_soft_shutdown_timeout=settings.worker_shutdown_grace_seconds,
    )
    app.conveyor_settings = settings  # type: ignore[attr-defined]

    @app.task(name=RUN_JOB_TASK, bind=True)
    def _run_job(self: Task[Any, Any], job_id: str) -> None:
        run_job(self, job_id)

    app.steps["worker"].add(HeartbeatStep)

    @signals.setup_logging.connect(weak=False)
    def keep_our_logging(**_: Any) -> None:
        # Connecting this stops Celery from installing its own handlers.
        configure_logging(settings.log_level, settings.log_format)

    @signals.worker_process_init.connect(weak=False)
    def build_child_runtime(**_: Any) -> None:
        get_runtime(app)

    _release_on_shutdown(app)
    _say_through_logging()
    return app
