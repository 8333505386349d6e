"""Per-process resources. A prefork child builds its own after the fork:
database connections must never be shared across processes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import Engine

from conveyor.common.db import make_sync_engine
from conveyor.worker.settings import WorkerSettings


@dataclass
class Runtime:
    settings: WorkerSettings
    engine: Engine
    pid: int = field(default_factory=os.getpid)

    def close(self) -> None:
        self.engine.dispose()


def get_runtime(app: Celery) -> Runtime:
    """This process's runtime, built on first use and again after any fork."""
    runtime: Runtime | None = getattr(app, "conveyor_runtime", None)
    if runtime is None or runtime.pid != os.getpid():
        if runtime is not None:
            # Inherited from the parent: drop its sockets without closing them for it.
            runtime.engine.dispose(close=False)
        settings: WorkerSettings = app.conveyor_settings  # type: ignore[attr-defined]
        runtime = Runtime(settings=settings, engine=make_sync_engine(settings))
        app.conveyor_runtime = runtime  # type: ignore[attr-defined]
    return runtime
