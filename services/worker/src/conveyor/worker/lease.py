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
        self.lock = threading.Condition()
        self.job: ClaimedJob | None = None
        self.due = 0.0
        self.thread: threading.Thread | None = None

    def hold(self, job: ClaimedJob) -> None:
        with self.lock:
            self.job, self.due = job, time.monotonic() + self.lease_s / 3
            if self.thread is None:  # first job of this process, after any fork
                self.thread = threading.Thread(target=self.run, name="lease-keeper", daemon=True)
                self.thread.start()

    def release(self) -> None:
        with self.lock:
            self.job = None

    def run(self) -> None:
        # Without a job it sleeps a third of a lease, so it always wakes by the
        # due time of a job held meanwhile: no wake-up is needed on hold().
        while True:
            with self.lock:
                job = self.job
                wait = self.due - time.monotonic() if job is not None else self.lease_s / 3
                if wait > 0 or job is None:
                    self.lock.wait(max(wait, 0.0))
                    continue
                self.due += self.lease_s / 3
            self.renew(job)

    def renew(self, job: ClaimedJob) -> None:
        try:
            if not attempts.renew_lease(self.db, job, self.lease_s):
                with self.lock:
                    still_held = self.job is job
                    if still_held:  # stop renewing; its outcome write will be fenced off
                        self.job = None
                if still_held:  # not merely finished while we renewed
                    log.warning("lease lost", job_id=str(job.id))
        except Exception as exc:  # the database may blip; try again next tick
            log.warning("lease renewal failed", job_id=str(job.id), error=str(exc))
