"""Stopping a cancelled job's handler inside the worker process: the signal
raises JobCancelled only into the cancelled attempt's handler, and the lease
keeper asks for it once it reads the attempt as cancelled."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.worker import attempts
from conveyor.worker.attempts import ClaimedJob
from conveyor.worker.cancel import CANCEL_SIGNAL, HandlerInterrupt, JobCancelled
from conveyor.worker.lease import LeaseKeeper
from tests.support.processes import wait_until


def _job() -> ClaimedJob:
    return ClaimedJob(uuid.uuid4(), "sleep", {"ms": 0}, 1, 3, "w@h/1")


@pytest.fixture
def interrupt() -> Iterator[HandlerInterrupt]:
    previous = signal.getsignal(CANCEL_SIGNAL)
    handler = HandlerInterrupt()
    handler.install()
    assert handler.installed
    yield handler
    signal.signal(CANCEL_SIGNAL, previous)


def _later(seconds: float, action: Any) -> threading.Thread:
    thread = threading.Timer(seconds, action)
    thread.start()
    return thread


def test_cancel_interrupts_a_sleeping_handler(interrupt: HandlerInterrupt) -> None:
    job = _job()
    started = time.monotonic()
    _later(0.2, lambda: interrupt.cancel(job))
    with pytest.raises(JobCancelled), interrupt.handler_of(job):
        time.sleep(30)
    assert time.monotonic() - started < 20  # not the 30 s sleep


def test_cancel_interrupts_a_cpu_loop(interrupt: HandlerInterrupt) -> None:
    job = _job()
    _later(0.2, lambda: interrupt.cancel(job))
    with pytest.raises(JobCancelled), interrupt.handler_of(job):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pass


def test_a_handler_cannot_swallow_it(interrupt: HandlerInterrupt) -> None:
    job = _job()
    _later(0.2, lambda: interrupt.cancel(job))
    # The innermost context is what a careless handler does: swallow Exception.
    with pytest.raises(JobCancelled), interrupt.handler_of(job), contextlib.suppress(Exception):
        time.sleep(30)


def test_cancel_of_another_or_finished_job_raises_nothing(interrupt: HandlerInterrupt) -> None:
    finished, running = _job(), _job()
    with interrupt.handler_of(finished):
        pass
    assert interrupt.cancel(finished) is False  # no longer on the main thread
    with interrupt.handler_of(running):
        assert interrupt.cancel(finished) is False
        # Even a stray signal raises nothing into a job that was not cancelled.
        signal.raise_signal(CANCEL_SIGNAL)
        time.sleep(0.05)


def test_without_the_handler_installed_no_signal_is_sent() -> None:
    job = _job()
    interrupt = HandlerInterrupt()  # never installed: the signal's default would kill us
    with interrupt.handler_of(job):
        assert interrupt.cancel(job) is False


def test_lease_keeper_interrupts_once_it_reads_the_attempt_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cancelled: set[uuid.UUID] = set()
    asked: list[uuid.UUID] = []
    monkeypatch.setattr(attempts, "renew_lease", lambda db, job, lease_s: True)

    def is_cancelled(db: Any, job: ClaimedJob) -> bool:
        asked.append(job.id)
        return job.id in cancelled

    monkeypatch.setattr(attempts, "is_cancelled", is_cancelled)
    stopped: list[ClaimedJob] = []

    class Recording(HandlerInterrupt):
        def cancel(self, job: ClaimedJob) -> bool:
            stopped.append(job)
            return True

    keeper = LeaseKeeper(db=None, lease_s=30, interrupt=Recording(), check_s=0.1)  # type: ignore[arg-type]
    job = _job()
    keeper.hold(job)
    wait_until(lambda: len(asked) >= 2, 10, what="two cancel checks")
    assert stopped == []
    cancelled.add(job.id)
    wait_until(lambda: stopped, 10, what="the interrupt")
    assert stopped == [job]
    assert keeper.job is None  # no more renewals or checks for it
    count = len(asked)
    time.sleep(0.3)
    assert len(asked) == count


def test_short_jobs_cost_no_cancel_check(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[uuid.UUID] = []
    monkeypatch.setattr(attempts, "is_cancelled", lambda db, job: asked.append(job.id) or False)
    keeper = LeaseKeeper(db=None, lease_s=30, check_s=0.3)  # type: ignore[arg-type]
    for _ in range(50):
        keeper.hold(_job())
        keeper.release()
    time.sleep(0.6)
    assert asked == []
