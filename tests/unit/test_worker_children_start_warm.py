"""Pool children inherit what the main process resolved before the fork: they
do not each resolve Celery's result backend with their first job (a scan of
every installed package's entry points, ~20-30 ms of CPU per child)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a subprocess: building the app installs the worker's signal handlers and
# compat entries, which must not leak into the test process.
_PROBE = textwrap.dedent(
    """
    import os, sys
    from celery import signals
    from celery.app import backends
    from conveyor.worker.app import create_celery_app
    from conveyor.worker.settings import WorkerSettings

    app = create_celery_app(WorkerSettings(
        database_url="postgresql+psycopg://u:p@db/conveyor",
        redis_url="redis://r:6379/0",
        metrics_port=0,
        log_level="WARNING",
    ))
    if sys.argv[1] == "worker_init":
        signals.worker_init.send(sender=None)  # what Celery sends before the pool forks

    calls = []
    resolve = backends.by_url
    backends.by_url = lambda *a, **k: calls.append(a) or resolve(*a, **k)
    pid = os.fork()
    if pid == 0:  # a pool child, running its first job
        backend = app.backend
        print(type(backend).__name__, len(calls), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


def _child_resolves(step: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, step], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_child_inherits_the_result_backend_resolved_before_the_fork() -> None:
    assert _child_resolves("worker_init") == "DisabledBackend 0"


def test_without_the_worker_init_step_each_child_resolves_it_itself() -> None:
    # The control: what every child paid before.
    assert _child_resolves("none") == "DisabledBackend 1"
