"""The soak's deployment, with the faults it suffers: embedded Postgres and
Redis that can be restarted in place, an API on a fixed port, two workers and
the scheduler. Each fault restarts what it stopped, as a supervisor would."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.engines import LocalPostgres, LocalRedis, embedded_engines, free_port
from tests.support.processes import PROCFILE, Proc, Stack, spawn, wait_until

# Short lease and reconcile periods: a killed worker's jobs, and messages lost
# with Redis, come back in seconds rather than the production half-minute.
SOAK_ENV = {
    "JOB_LEASE_SECONDS": "10",
    "RECONCILE_INTERVAL_SECONDS": "2",
    "RECONCILE_QUEUED_AFTER_SECONDS": "10",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "RETRY_BACKOFF_SECONDS": "0.2",
    "RETRY_BACKOFF_MAX_SECONDS": "2",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
}
WORKERS = ("worker-a", "worker-b")
FAULT_KINDS = (
    "worker_sigkill",
    "api_sigterm",
    "redis_restart",
    "postgres_restart",
    "worker_sigterm",
)


@dataclass
class Cluster:
    pg: LocalPostgres
    rd: LocalRedis
    stack: Stack
    port: int = field(default_factory=free_port)
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, role: str) -> None:
        if role == "api":
            proc = spawn(
                "web", PROCFILE["web"], self.stack.env(PORT=str(self.port)), self.stack.log_dir
            )
            self.procs[role] = proc
            wait_until(lambda: self._ready(proc), 60, what="API /readyz")
        elif role in WORKERS:
            self.procs[role] = self.stack.start_worker(concurrency=2)
        else:
            self.procs[role] = self.stack.start_scheduler(METRICS_PORT="0")
        self.stack.procs.clear()  # ours to stop, by role

    def _ready(self, proc: Proc) -> bool:
        if not proc.alive():
            raise AssertionError(f"API exited:\n{proc.output()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pids(self) -> dict[str, int | None]:
        found: dict[str, int | None] = {
            role: proc.popen.pid if proc.alive() else None for role, proc in self.procs.items()
        }
        for name, engine in (("postgres", self.pg), ("redis", self.rd)):
            alive = engine.proc is not None and engine.proc.poll() is None
            found[name] = engine.proc.pid if alive and engine.proc else None
        return found

    def inject(self, kind: str, worker: str) -> None:
        """One fault, and the restart that follows it."""
        if kind == "worker_sigkill":
            self.procs[worker].kill_group()  # the whole pod: the main process and its pool
            self.start(worker)
        elif kind == "worker_sigterm":
            self.procs[worker].stop(timeout=30)
            self.start(worker)
        elif kind == "api_sigterm":
            self.procs["api"].stop(timeout=30)
            self.start("api")
        elif kind == "redis_restart":
            self.rd.stop()
            self.rd.start()
        elif kind == "postgres_restart":
            self.pg.stop()
            self.pg.start()
        else:
            raise ValueError(kind)

    def stop(self) -> None:
        """SIGTERM to every process at once, then SIGKILL to what is left."""
        for proc in self.procs.values():
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            proc.stop(timeout=0.1)


@contextlib.contextmanager
def cluster(workdir: Path, extra_env: dict[str, str]) -> Iterator[Cluster]:
    # Durable, like production: Redis keeps its queue through a restart (AOF).
    with embedded_engines(workdir, durable=True) as (pg, rd):
        stack = Stack(
            database_url=pg.url,
            redis_url=rd.url,
            log_dir=workdir / "logs",
            extra_env={**SOAK_ENV, **extra_env},
        )
        stack.migrate()
        running = Cluster(pg, rd, stack)
        try:
            yield running
        finally:
            running.stop()


def start_all(running: Cluster, on_start: Callable[[str], None] | None = None) -> None:
    for role in ("api", *WORKERS, "scheduler"):
        running.start(role)
        if on_start:
            on_start(role)
