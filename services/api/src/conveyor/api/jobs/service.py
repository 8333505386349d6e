"""Job cancels, retries and counts for the API (submits: submit.py; reads:
reads.py). Every query is scoped to the caller's tenant."""

from __future__ import annotations

import uuid

from sqlalchemy import Executable, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.api.jobs.reads import not_found
from conveyor.api.problems import Problem
from conveyor.common.models import Job, JobCount, JobStatus

# What a cancel may stop. A running job's worker finds its outcome write fenced
# off and its handler interrupted (docs/design.md, "Cancelling a running job").
_CANCELLABLE = (JobStatus.SCHEDULED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_RETRYABLE = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)


async def cancel_job(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """One conditional UPDATE: against a worker's outcome write, exactly one wins,
    and the loser's reply (200 cancelled, or 409 naming the state) says which."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.tenant_id == tenant_id, Job.status.in_(_CANCELLABLE))
        .values(
            status=JobStatus.CANCELLED.value,
            lease_expires_at=None,
            finished_at=func.now(),
            updated_at=func.now(),
        )
        .returning(Job)
    )
    return await _updated_or_conflict(
        session,
        stmt,
        tenant_id,
        job_id,
        "is already {}; only scheduled, queued or running jobs can be cancelled.",
    )


async def retry_job(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """failed or cancelled -> queued, attempts 0; the run that ended goes to
    attempt_history. One conditional UPDATE: of two concurrent retries, one wins."""
    earlier_run = func.jsonb_build_object(
        "status", Job.status,
        "attempts", Job.attempts,
        "error", Job.error,
        "worker_id", Job.worker_id,
        "run_at", Job.run_at,
        "started_at", Job.started_at,
        "finished_at", Job.finished_at,
        "retried_at", func.now(),
    )  # fmt: skip
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.tenant_id == tenant_id, Job.status.in_(_RETRYABLE))
        .values(
            status=JobStatus.QUEUED.value,
            attempts=0,
            attempt_history=Job.attempt_history.op("||", return_type=JSONB)(
                func.jsonb_build_array(earlier_run)
            ),
            result=None,
            error=None,
            worker_id=None,
            lease_expires_at=None,
            run_at=None,
            started_at=None,
            finished_at=None,
            # Runnable from now: the queue age counts from the retry, not the submit.
            run_after=func.now(),
            updated_at=func.now(),
        )
        .returning(Job)
    )
    return await _updated_or_conflict(
        session, stmt, tenant_id, job_id, "is {}; only failed or cancelled jobs can be retried."
    )


async def _updated_or_conflict(
    session: AsyncSession,
    stmt: Executable,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    conflict: str,
) -> Job:
    """Run a conditional `UPDATE ... RETURNING`; when it matched no row, a 409
    naming the job's current state (`conflict` formats it; 404 if not found)."""
    job: Job | None = (await session.execute(stmt)).scalar_one_or_none()
    await session.commit()
    if job is not None:
        return job
    current = await session.scalar(
        select(Job.status).where(Job.id == job_id, Job.tenant_id == tenant_id)
    )
    if current is None:
        raise not_found(job_id)
    raise Problem(409, "Conflict", f"Job {job_id} {conflict.format(current)}", status_value=current)


async def count_by_status(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, int]:
    # The counters triggers keep on write (migration 0006): a few rows, where
    # count(*) over a tenant's jobs takes seconds at millions of jobs.
    stmt = (
        select(JobCount.status, func.sum(JobCount.n))
        .where(JobCount.tenant_id == tenant_id)
        .group_by(JobCount.status)
    )
    counts = {status.value: 0 for status in JobStatus}
    for status, count in (await session.execute(stmt)).all():
        counts[status] = int(count)
    return counts
