"""Keeps a running job's lease alive while its handler works."""

from __future__ import annotations

import threading
import time

from conveyor.common.logging import get_logger
from conveyor.worker import attempts
from conveyor.worker.attempts import ClaimedJob
from conveyor.worker.pg import Connections

log = get_logger(__name__)


class LeaseKeeper:
    """One per process (a pool child runs one job at a time): a daemon thread
    renews the held job's lease once it has run a third of the lease, and every
    third after that.

    Holding and releasing a job only set a field under a lock: a short job
    costs no thread, no wake-up and no SQL. If this process dies, renewals stop
    and the reconciler requeues the job once the lease runs out.
    """

    def __init__(self, db: Connections, lease_s: float) -> None:
        self.db, self.lease_s = db, lease_s
        self._lock = threading.Condition()
        self._job: ClaimedJob | None = None
        self._due = 0.0
        self._thread: threading.Thread | None = None

    def hold(self, job: ClaimedJob) -> None:
        with self._lock:
            self._job, self._due = job, time.monotonic() + self.lease_s / 3
            if self._thread is None:  # first job of this process, after any fork
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._job = None

    def _run(self) -> None:
        # Without a job it sleeps a third of a lease, so it always wakes by the
        # due time of a job held meanwhile: no wake-up is needed on hold().
        while True:
            with self._lock:
                job = self._job
                wait = self._due - time.monotonic() if job is not None else self.lease_s / 3
                if wait > 0 or job is None:
                    self._lock.wait(max(wait, 0.0))
                    continue
                self._due += self.lease_s / 3
            self._renew(job)

    def _renew(self, job: ClaimedJob) -> None:
        try:
            if not attempts.renew_lease(self.db, job, self.lease_s):
                with self._lock:
                    still_held = self._job is job
                    if still_held:  # stop renewing; its outcome write will be fenced off
                        self._job = None
                if still_held:  # not merely finished while we renewed
                    log.warning("lease lost", job_id=str(job.id))
        except Exception as exc:  # the database may blip; try again next tick
            log.warning("lease renewal failed", job_id=str(job.id), error=str(exc))
