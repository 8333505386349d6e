"""The worker's and the reconciler's SQL: claims, outcomes and recovery.

Every state change is one conditional UPDATE, so two deliveries of the same
job can never both run it, and a terminal job never changes again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, case, func, literal, select, update

from conveyor.common.models import Job, JobStatus

_QUEUED = JobStatus.QUEUED.value
_RUNNING = JobStatus.RUNNING.value


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str


@dataclass(frozen=True)
class JobRef:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]


def claim(engine: Engine, job_id: uuid.UUID, worker_id: str, lease_s: float) -> ClaimedJob | None:
    """queued -> running, attempts+1, with a lease. None if someone else has it or it is done."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status == _QUEUED, Job.attempts < Job.max_attempts)
        .values(
            status=_RUNNING,
            attempts=Job.attempts + 1,
            worker_id=worker_id,
            lease_expires_at=func.now() + timedelta(seconds=lease_s),
            started_at=func.coalesce(Job.started_at, func.now()),
            updated_at=func.now(),
        )
        .returning(Job.id, Job.kind, Job.params, Job.attempts, Job.max_attempts)
    )
    with engine.begin() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return ClaimedJob(row.id, row.kind, row.params, row.attempts, row.max_attempts, worker_id)


def _held_by(job: ClaimedJob) -> list[Any]:
    # Fencing: only the holder of this very attempt may write its outcome.
    return [
        Job.id == job.id,
        Job.status == _RUNNING,
        Job.worker_id == job.worker_id,
        Job.attempts == job.attempt,
    ]


def renew_lease(engine: Engine, job: ClaimedJob, lease_s: float) -> bool:
    stmt = (
        update(Job)
        .where(*_held_by(job))
        .values(lease_expires_at=func.now() + timedelta(seconds=lease_s))
    )
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def succeed(engine: Engine, job: ClaimedJob, result: dict[str, Any]) -> bool:
    stmt = (
        update(Job)
        .where(*_held_by(job))
        .values(
            status=JobStatus.SUCCEEDED.value,
            result=result,
            error=None,
            lease_expires_at=None,
            finished_at=func.now(),
            updated_at=func.now(),
        )
    )
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def fail(engine: Engine, job: ClaimedJob, error: str, *, retry_in_s: float | None) -> str | None:
    """Record a failed attempt: back to queued (with backoff) or failed for good.

    Returns the new status, or None if this worker no longer held the job.
    """
    can_retry = retry_in_s is not None and job.attempt < job.max_attempts
    values: dict[str, Any] = {
        "error": error[:4000],
        "lease_expires_at": None,
        "updated_at": func.now(),
    }
    if can_retry:
        assert retry_in_s is not None
        values |= {"status": _QUEUED, "run_after": func.now() + timedelta(seconds=retry_in_s)}
    else:
        values |= {"status": JobStatus.FAILED.value, "finished_at": func.now()}
    with engine.begin() as conn:
        changed = conn.execute(update(Job).where(*_held_by(job)).values(**values)).rowcount
    if changed != 1:
        return None
    return _QUEUED if can_retry else JobStatus.FAILED.value


def release_worker_jobs(engine: Engine, worker_prefix: str) -> list[JobRef]:
    """A worker shutting down hands its running jobs back, without using an attempt."""
    stmt = (
        update(Job)
        .where(Job.status == _RUNNING, Job.worker_id.startswith(worker_prefix, autoescape=True))
        .values(
            status=_QUEUED,
            attempts=Job.attempts - 1,
            lease_expires_at=None,
            updated_at=func.now(),
        )
        .returning(Job.id, Job.kind, Job.params)
    )
    with engine.begin() as conn:
        return [JobRef(r.id, r.kind, r.params) for r in conn.execute(stmt)]


def requeue_expired_leases(engine: Engine, limit: int = 1000) -> tuple[list[JobRef], int]:
    """running jobs whose worker died: back to queued, or failed when out of attempts.

    Returns (jobs to publish again, how many ended failed).
    """
    expired = (
        select(Job.id)
        .where(Job.status == _RUNNING, Job.lease_expires_at < func.now())
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    out_of_attempts = Job.attempts >= Job.max_attempts
    stmt = (
        update(Job)
        .where(Job.id.in_(expired))
        .values(
            status=case((out_of_attempts, JobStatus.FAILED.value), else_=_QUEUED),
            finished_at=case((out_of_attempts, func.now()), else_=literal(None)),
            error="lease expired: the worker running this attempt was lost",
            lease_expires_at=None,
            updated_at=func.now(),
        )
        .returning(Job.id, Job.kind, Job.params, Job.status)
    )
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
    requeued = [JobRef(r.id, r.kind, r.params) for r in rows if r.status == _QUEUED]
    return requeued, len(rows) - len(requeued)


def count_queued(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(Job.status == _QUEUED)).scalar_one())


def touch_stale_queued(engine: Engine, older_than_s: float, limit: int) -> list[JobRef]:
    """The oldest jobs queued too long and due; marks them so the next tick skips them."""
    stale = (
        select(Job.id)
        .where(
            Job.status == _QUEUED,
            Job.updated_at < func.now() - timedelta(seconds=older_than_s),
            (Job.run_after.is_(None)) | (Job.run_after <= func.now()),
        )
        .order_by(Job.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(Job)
        .where(Job.id.in_(stale))
        .values(updated_at=func.now())
        .returning(Job.id, Job.kind, Job.params)
    )
    with engine.begin() as conn:
        return [JobRef(r.id, r.kind, r.params) for r in conn.execute(stmt)]
