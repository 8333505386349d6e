"""Job reads and cancels for the API (submits: submit.py). Every query is
scoped to the caller's tenant."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.api.jobs.cursor import decode_cursor, encode_cursor
from conveyor.api.problems import Problem
from conveyor.common.models import Job, JobCount, JobStatus


def _not_found(job_id: uuid.UUID) -> Problem:
    # The same answer for "no such job" and "another tenant's job".
    return Problem(404, "Not Found", f"No job {job_id}.")


async def get_job(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise _not_found(job_id)
    return job


async def list_jobs(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    status: JobStatus | None,
    kind: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        stmt = stmt.where(Job.status == status.value)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    if cursor is not None:
        created_at, last_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, last_id))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)


async def cancel_job(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.tenant_id == tenant_id, Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELLED.value, finished_at=func.now(), updated_at=func.now())
        .returning(Job)
    )
    job = (await session.execute(stmt)).scalar_one_or_none()
    await session.commit()
    if job is not None:
        return job
    current = await get_job(session, tenant_id, job_id)
    raise Problem(
        409,
        "Conflict",
        f"Job {job_id} is {current.status}; only queued jobs can be cancelled.",
        status_value=current.status,
    )


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
