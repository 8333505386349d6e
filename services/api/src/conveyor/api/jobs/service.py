"""Job persistence for the API. Every query is scoped to the caller's tenant."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.api.jobs.cursor import decode_cursor, encode_cursor
from conveyor.api.jobs.schemas import JobCreate
from conveyor.api.problems import Problem
from conveyor.common.models import Job, JobStatus


def _not_found(job_id: uuid.UUID) -> Problem:
    # The same answer for "no such job" and "another tenant's job".
    return Problem(404, "Not Found", f"No job {job_id}.")


def request_fingerprint(body: JobCreate, max_attempts: int) -> str:
    canonical = {
        "kind": body.kind,
        "params": body.params.model_dump(mode="json"),
        "max_attempts": max_attempts,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def _find_by_key(session: AsyncSession, tenant_id: uuid.UUID, key: str) -> Job | None:
    stmt = select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


def _replay_or_conflict(existing: Job, fingerprint: str, key: str) -> Job:
    if existing.request_hash != fingerprint:
        raise Problem(
            422,
            "Idempotency key reused",
            f"Idempotency-Key {key!r} was used with a different request body.",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )
    return existing


async def submit_job(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    body: JobCreate,
    *,
    default_max_attempts: int,
    idempotency_key: str | None,
    idempotency_ttl: timedelta,
) -> tuple[Job, bool]:
    """Insert a queued job and commit. Returns (job, created)."""
    max_attempts = body.max_attempts or default_max_attempts
    fingerprint = request_fingerprint(body, max_attempts)
    if idempotency_key is not None:
        existing = await _find_by_key(session, tenant_id, idempotency_key)
        if existing is not None:
            if existing.created_at > datetime.now(UTC) - idempotency_ttl:
                return _replay_or_conflict(existing, fingerprint, idempotency_key), False
            # Expired: the old job keeps its data but gives up the key.
            existing.idempotency_key = None
            await session.flush()
    stmt = (
        insert(Job)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            kind=body.kind,
            params=body.params.model_dump(mode="json"),
            status=JobStatus.QUEUED.value,
            attempts=0,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
        )
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "idempotency_key"],
            index_where=text("idempotency_key IS NOT NULL"),
        )
        .returning(Job)
    )
    job = (await session.execute(stmt)).scalar_one_or_none()
    if job is None and idempotency_key is not None:
        # A concurrent request with the same key won the insert.
        await session.rollback()
        winner = await _find_by_key(session, tenant_id, idempotency_key)
        if winner is None:
            raise Problem(409, "Conflict", "Concurrent request with this Idempotency-Key; retry.")
        return _replay_or_conflict(winner, fingerprint, idempotency_key), False
    await session.commit()
    assert job is not None
    return job, True


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
    stmt = select(Job.status, func.count()).where(Job.tenant_id == tenant_id).group_by(Job.status)
    counts = {status.value: 0 for status in JobStatus}
    for status, count in (await session.execute(stmt)).all():
        counts[status] = int(count)
    return counts
