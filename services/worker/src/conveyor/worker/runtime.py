"""Per-process resources. A prefork child builds its own after the fork:
database connections must never be shared across processes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import Engine, create_engine

from conveyor.common.telemetry import instrument_engine
from conveyor.worker.lease import LeaseKeeper
from conveyor.worker.settings import WorkerSettings


def make_attempt_engine(settings: WorkerSettings) -> Engine:
    """The engine for `attempts`: autocommit, so each statement is its own
    transaction, and no ping per checkout (`attempts` retries once on a stale
    connection instead). Two connections: the job's and its lease keeper's."""
    engine = create_engine(
        settings.sync_database_url,
        isolation_level="AUTOCOMMIT",
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=False,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
    instrument_engine(engine)  # SQL spans, when this process exports traces
    return engine


@dataclass
class Runtime:
    settings: WorkerSettings
    engine: Engine
    lease: LeaseKeeper
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
        engine = make_attempt_engine(settings)
        runtime = Runtime(settings, engine, LeaseKeeper(engine, settings.job_lease_seconds))
        app.conveyor_runtime = runtime  # type: ignore[attr-defined]
    return runtime
