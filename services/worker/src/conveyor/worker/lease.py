"""Keeps a running job's lease alive while its handler works, and notices a cancel."""

from __future__ import annotations

import threading
import time

from conveyor.common.logging import get_logger
from conveyor.worker import attempts
from conveyor.worker.attempts import ClaimedJob
from conveyor.worker.cancel import HandlerInterrupt
from conveyor.worker.pg import Connections

log = get_logger(__name__)

# How often a held job's row is read for a cancel: a job stops within about
# this long of its cancel, and a job shorter than this costs no read at all
# (docs/design.md, "Cancelling a running job").
CANCEL_CHECK_SECONDS = 1.0


class LeaseKeeper:
    """One per process (a pool child runs one job at a time): a daemon thread
    renews the held job's lease once it has run a third of the lease, and every
    third after that, and reads the job's status every CANCEL_CHECK_SECONDS.

    Holding and releasing a job only set a field under a lock: a short job
    costs no thread, no wake-up and no SQL. If this process dies, renewals stop
    and the reconciler requeues the job once the lease runs out.
    """

    def __init__(
        self,
        db: Connections,
        lease_s: float,
        interrupt: HandlerInterrupt | None = None,
        check_s: float = CANCEL_CHECK_SECONDS,
    ) -> None:
        self.db, self.lease_s, self.check_s = db, lease_s, check_s
        self.interrupt = interrupt or HandlerInterrupt()
        self.lock = threading.Condition()
        self.job: ClaimedJob | None = None
        self.due = self.check_due = 0.0
        self.thread: threading.Thread | None = None

    def hold(self, job: ClaimedJob) -> None:
        with self.lock:
            now = time.monotonic()
            self.job, self.due, self.check_due = job, now + self.lease_s / 3, now + self.check_s
            if self.thread is None:  # first job of this process, after any fork
                self.thread = threading.Thread(target=self.run, name="lease-keeper", daemon=True)
                self.thread.start()

    def release(self) -> None:
        with self.lock:
            self.job = None

    def run(self) -> None:
        # Without a job it sleeps the shorter of a third of a lease and a check
        # interval, so it always wakes by the due times of a job held
        # meanwhile: no wake-up is needed on hold().
        idle = min(self.lease_s / 3, self.check_s)
        while True:
            with self.lock:
                job, now = self.job, time.monotonic()
                if job is None:
                    self.lock.wait(idle)
                    continue
                renew, check = self.due <= now, self.check_due <= now
                if not (renew or check):
                    self.lock.wait(min(self.due, self.check_due) - now)
                    continue
                if renew:
                    self.due += self.lease_s / 3
                if check:
                    self.check_due = now + self.check_s
            if renew:
                self.renew(job)
            if check:
                self.check(job)

    def drop(self, job: ClaimedJob) -> bool:
        """Stop keeping `job`; False if it was released meanwhile (it finished)."""
        with self.lock:
            still_held = self.job is job
            if still_held:
                self.job = None
        return still_held

    def renew(self, job: ClaimedJob) -> None:
        try:
            # Not renewed: lost or cancelled; its outcome write will be fenced off.
            if not attempts.renew_lease(self.db, job, self.lease_s) and self.drop(job):
                log.warning("lease lost", job_id=str(job.id))
        except Exception as exc:  # the database may blip; try again next tick
            log.warning("lease renewal failed", job_id=str(job.id), error=str(exc))

    def check(self, job: ClaimedJob) -> None:
        try:
            cancelled = attempts.is_cancelled(self.db, job)
        except Exception as exc:  # next tick; the fence keeps the outcome right meanwhile
            log.warning("cancel check failed", job_id=str(job.id), error=str(exc))
            return
        if cancelled and self.drop(job):
            stopping = self.interrupt.cancel(job)
            log.info("job cancelled while running", job_id=str(job.id), interrupting=stopping)
