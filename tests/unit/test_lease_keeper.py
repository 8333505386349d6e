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

LEASE_S = 0.6  # renewals every 0.2 s


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
    time.sleep(LEASE_S * 1.2)  # ~3.6 thirds
    keeper.release()
    count = len(renewals)
    assert count in (3, 4), renewals
    assert {job_id for job_id, _ in renewals} == {job.id}
    first = renewals[0][1] - held_at
    assert LEASE_S / 3 - 0.01 <= first <= LEASE_S / 3 + 0.1, first  # never late
    time.sleep(LEASE_S)
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
    time.sleep(LEASE_S * 1.5)
    keeper.release()
    assert len(renewals) == 1  # the first renewal found the lease gone, and it stopped
