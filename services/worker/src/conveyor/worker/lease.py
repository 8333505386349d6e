"""Keeps a running job's lease alive while its handler works."""

from __future__ import annotations

import threading
from types import TracebackType

from sqlalchemy import Engine

from conveyor.common.logging import get_logger
from conveyor.worker import repository
from conveyor.worker.repository import ClaimedJob

log = get_logger(__name__)


class LeaseKeeper:
    """Renews the lease every third of its length on a daemon thread.

    If this process dies, renewals stop and the reconciler requeues the job
    once the lease runs out.
    """

    def __init__(self, engine: Engine, job: ClaimedJob, lease_s: float) -> None:
        self.engine, self.job, self.lease_s = engine, job, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not repository.renew_lease(self.engine, self.job, self.lease_s):
                    log.warning("lease lost", job_id=str(self.job.id))
                    return
            except Exception as exc:  # the database may blip; try again next tick
                log.warning("lease renewal failed", job_id=str(self.job.id), error=str(exc))

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
