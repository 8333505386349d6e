"""Stopping a running job's handler once the API has cancelled it.

The API's cancel is the truth: it flips the row `running` -> `cancelled`, and
every later write of the attempt is fenced off (see docs/design.md,
"Cancelling a running job"). This module only frees the pool process early: the lease keeper
sees the cancel (`LeaseKeeper.check`) and calls `HandlerInterrupt.cancel`,
which signals this process; the handler on the main thread then raises
`JobCancelled` wherever it is, `time.sleep` and pure-Python loops included,
the way Celery's soft time limit interrupts a task (SIGUSR1; we use SIGUSR2).
Celery's `revoke(terminate=True)` is not used: it kills a pool process by pid
from the parent, and may kill whichever task that process runs by then
(celery/celery#7529); this raises only while the cancelled job is still the
one on the main thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from conveyor.worker.attempts import ClaimedJob

CANCEL_SIGNAL = signal.SIGUSR2


class JobCancelled(BaseException):
    """Raised in the handler of a job cancelled while it ran. A BaseException,
    so a handler's own `except Exception` cannot swallow it."""


class HandlerInterrupt:
    """One per process. `running` is the job whose handler is on the main thread."""

    def __init__(self) -> None:
        self.running: ClaimedJob | None = None
        self.cancelled: ClaimedJob | None = None
        self.installed = False

    def install(self) -> None:
        """Take CANCEL_SIGNAL; only from the main thread (a pool child's start)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(CANCEL_SIGNAL, self.on_signal)
            self.installed = True

    @contextlib.contextmanager
    def handler_of(self, job: ClaimedJob) -> Iterator[None]:
        self.running = job
        try:
            yield
        finally:
            self.running = None

    def cancel(self, job: ClaimedJob) -> bool:
        """From the lease keeper's thread: interrupt `job`'s handler if it still runs.
        False when this process never took the signal (its default would kill it)."""
        self.cancelled = job
        if not self.installed or self.running is not job:
            return False
        os.kill(os.getpid(), CANCEL_SIGNAL)
        return True

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between two bytecodes: raise only into the
        # cancelled job's handler, never into the next job or the outcome write.
        job = self.running
        if job is not None and job is self.cancelled:
            raise JobCancelled(f"job {job.id} was cancelled")
