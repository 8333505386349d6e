"""Per-process resources. A prefork child builds its own after the fork:
database connections must never be shared across processes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from celery import Celery

from conveyor.worker.cancel import HandlerInterrupt
from conveyor.worker.lease import LeaseKeeper
from conveyor.worker.pg import Connections
from conveyor.worker.settings import WorkerSettings


@dataclass
class Runtime:
    settings: WorkerSettings
    db: Connections
    lease: LeaseKeeper
    interrupt: HandlerInterrupt
    pid: int = field(default_factory=os.getpid)


def get_runtime(app: Celery) -> Runtime:
    """This process's runtime, built on first use and again after any fork.

    Connections open on first use, so an inherited runtime holds none to drop.
    """
    runtime: Runtime | None = getattr(app, "conveyor_runtime", None)
    if runtime is None or runtime.pid != os.getpid():
        settings: WorkerSettings = app.conveyor_settings  # type: ignore[attr-defined]
        db = Connections(settings.sync_database_url)
        interrupt = HandlerInterrupt()
        lease = LeaseKeeper(db, settings.job_lease_seconds, interrupt)
        runtime = Runtime(settings, db, lease, interrupt)
        app.conveyor_runtime = runtime  # type: ignore[attr-defined]
    return runtime
