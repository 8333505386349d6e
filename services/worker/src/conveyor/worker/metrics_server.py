"""The worker's /metrics: prometheus_client's multiprocess mode, served by the main process.

- the main process points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory
  (its own under /tmp, or the one the environment names, emptied) when the
  Celery app is built: before the pool forks, and before prometheus_client is
  first imported (Celery's command line imports it with Flower's plugin), which
  is when the library reads that variable; every child writes its samples to
  its own files there;
- the main process serves `/metrics` on `METRICS_PORT` (0 turns it off) from a
  registry holding only a `MultiProcessCollector`, which sums the children's
  files: a child that exits or is replaced keeps its counts (never lost), and
  no process's samples are read twice (never doubled);
- live-process gauges drop a child's files when it exits (`mark_process_dead`),
  or at the next scrape if it was killed without a chance to say so.

The scheduler, a single process, serves its own registry with `serve_registry`
after `use_single_process_mode()`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.common.logging import get_logger

if TYPE_CHECKING:  # imported for real only once the multiprocess mode is chosen
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")

log = get_logger("conveyor.worker.metrics")


def prepare_multiprocess_dir() -> Path:
    """Before prometheus_client is imported: an empty PROMETHEUS_MULTIPROC_DIR.

    The environment's directory is emptied (files left by a previous run would
    be added to this run's counts); without one, a private directory under the
    temp dir (/tmp, the chart's one writable mount) is made and removed at exit,
    so several workers on one host never share files.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return path
    if "prometheus_client" in sys.modules:
        # It chose single-process values at import: the children would count
        # into memory that no scrape reads.
        raise RuntimeError(
            f"prometheus_client was imported before {MULTIPROC_ENV} was set;"
            " import it only after prepare_multiprocess_dir()"
        )
    path = Path(tempfile.mkdtemp(prefix="conveyor-worker-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    main_pid = os.getpid()

    def remove() -> None:
        if os.getpid() == main_pid:  # never from a child that inherited the hook
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
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


def mark_this_process_dead() -> None:
    """A child on its way out: its live gauges go."""
    from prometheus_client import multiprocess

    with contextlib.suppress(Exception):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class PruningMultiProcessCollector:
    def __init__(self, path: Path) -> None:
        from prometheus_client import multiprocess

        self.path = path
        self.inner = multiprocess.MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Any]:
        prune_dead_processes(self.path)
        samples: Iterable[Any] = self.inner.collect()  # type: ignore[no-untyped-call]
        return samples


def use_single_process_mode() -> None:
    """For a process without children (the scheduler): count in memory.

    An inherited PROMETHEUS_MULTIPROC_DIR (one environment for every process)
    would make prometheus_client write files there at import, and share the
    worker's directory; it is dropped before that import.
    """
    os.environ.pop(MULTIPROC_ENV, None)
    if "prometheus_client" in sys.modules:
        from prometheus_client import values

        if values.ValueClass is not values.MutexValue:
            raise RuntimeError(
                f"prometheus_client was imported with {MULTIPROC_ENV} set;"
                " call use_single_process_mode() before importing it"
            )


def start_metrics_server(port: int, path: Path) -> bool:
    """Serve the children's summed metrics on `port`. False if it cannot bind
    (the worker runs on; a second worker on one host needs its own METRICS_PORT)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(PruningMultiProcessCollector(path))
    return serve_registry(port, registry)


def serve_registry(port: int, registry: CollectorRegistry) -> bool:
    """Serve `registry` on `port`'s /metrics from a daemon thread. False if it cannot bind."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        log.warning("metrics server not started", port=port, error=str(exc))
        return False
    log.info("metrics server started", port=port, path="/metrics")
    return True
