"""The per-process lease keeper: renews only a job that runs past a third of
its lease, every third after that, and never one that was released."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from conveyor.worker import attempts
from conveyor.worker.attempts import ClaimedJob
from conveyor.worker.lease import LeaseKeeper
from tests.support.processes import wait_until

LEASE_S = 0.6  # renewals every 0.2 s
# Generous: the schedule's ordering is checked, not this machine's speed.
RENEWALS_DEADLINE_S = 10.0
CLOCK_SLACK_S = 0.01  # Condition.wait may return a hair before its timeout


def _job() -> ClaimedJob:
    return ClaimedJob(uuid.uuid4(), "sleep", {"ms": 0}, 1, 3, "w@h/1")


@pytest.fixture
def renewals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[uuid.UUID, float]]:
    """Every renewal the keeper asks for; each finds the lease still held."""
    seen: list[tuple[uuid.UUID, float]] = []

    def renew(db: Any, job: ClaimedJob, lease_s: float) -> bool:
        seen.append((job.id, time.monotonic()))
        return True

    monkeypatch.setattr(attempts, "renew_lease", renew)
    return seen


def test_short_jobs_cost_no_renewal(renewals: list[tuple[uuid.UUID, float]]) -> None:
    keeper = LeaseKeeper(db=None, lease_s=LEASE_S)  # type: ignore[arg-type]
    for _ in range(50):
        keeper.hold(_job())
        keeper.release()
    time.sleep(LEASE_S)
    assert renewals == []


def test_long_job_is_renewed_every_third_until_released(
    renewals: list[tuple[uuid.UUID, float]],
) -> None:
    keeper = LeaseKeeper(db=None, lease_s=LEASE_S)  # type: ignore[arg-type]
    time.sleep(0.05)  # the thread idles between jobs
    job = _job()
    held_at = time.monotonic()
    keeper.hold(job)
    # Poll with a deadline far beyond three thirds: on a loaded machine the
    # thread may wake late, and that is no failure of the schedule.
    wait_until(lambda: len(renewals) >= 3, timeout=RENEWALS_DEADLINE_S, what="3 renewals")
    keeper.release()
    count = len(renewals)
    assert {job_id for job_id, _ in renewals} == {job.id}
    offsets = [at - held_at for _, at in renewals]
    print(f"\nrenewals at {[round(o, 3) for o in offsets]} s (a third is {LEASE_S / 3:.3f} s)")
    # Never early: the k-th renewal waits for k thirds of the lease.
    for k, offset in enumerate(offsets, 1):
        assert offset >= k * LEASE_S / 3 - CLOCK_SLACK_S, (k, offsets)
    # Never so late that the lease ran out: each renewal within a lease of the last.
    gaps = [b - a for a, b in zip([0.0, *offsets], offsets, strict=False)]
    assert max(gaps) < LEASE_S, gaps
    time.sleep(LEASE_S)  # a window in which a still-held job would be renewed ~3 times
    assert len(renewals) == count  # released: no more renewals


def test_a_lost_lease_stops_the_renewals(
    renewals: list[tuple[uuid.UUID, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(db: Any, job: ClaimedJob, lease_s: float) -> bool:
        renewals.append((job.id, time.monotonic()))
        return False

    monkeypatch.setattr(attempts, "renew_lease", lost)
    keeper = LeaseKeeper(db=None, lease_s=LEASE_S)  # type: ignore[arg-type]
    keeper.hold(_job())
    wait_until(lambda: renewals, timeout=RENEWALS_DEADLINE_S, what="the first renewal")
    time.sleep(LEASE_S)  # a window in which a keeper that went on would renew ~3 times
    keeper.release()
    assert len(renewals) == 1  # the first renewal found the lease gone, and it stopped
