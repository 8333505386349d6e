"""The reconciler's and the shutdown's SQL: recovery of jobs no worker runs.

A running attempt's own SQL (claim, lease, outcome) is in `attempts`. Every
state change here is one conditional UPDATE, so a terminal job never changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import CTE, Engine, Select, case, delete, func, literal, select, update

from conveyor.common.models import TERMINAL_STATUSES, Job, JobStatus

_QUEUED = JobStatus.QUEUED.value
_RUNNING = JobStatus.RUNNING.value
_SCHEDULED = JobStatus.SCHEDULED.value


@dataclass(frozen=True)
class JobRef:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]


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


def _materialized(rows: Select[uuid.UUID]) -> CTE:
    """The ids a LIMIT ... FOR UPDATE SKIP LOCKED picks, picked once. As a plain
    `IN (subquery)` Postgres may run it again per row, and SKIP LOCKED then
    hands out further rows: an UPDATE with LIMIT 500 was seen changing 1200."""
    return rows.cte("picked").prefix_with("MATERIALIZED")


def queue_due_scheduled(engine: Engine, limit: int) -> list[JobRef]:
    """scheduled -> queued for jobs whose run_at has come, committed on return.

    The caller publishes them next. A crash in between leaves them queued with
    no message, which the stale-queued re-publish heals; a second message is a
    no-op claim. `run_after` takes the due time, so the queue age counts from it.
    """
    due = _materialized(
        select(Job.id)
        .where(Job.status == _SCHEDULED, Job.run_at <= func.now())
        .order_by(Job.run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Job)
        .where(Job.id.in_(select(due.c.id)), Job.status == _SCHEDULED)
        .values(status=_QUEUED, run_after=Job.run_at, updated_at=func.now())
        .returning(Job.id, Job.kind, Job.params)
    )
    with engine.begin() as conn:
        return [JobRef(r.id, r.kind, r.params) for r in conn.execute(stmt)]


def delete_expired(engine: Engine, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` terminal jobs finished more than `older_than_s` ago
    (their idempotency keys live on the row and go with it). One short
    transaction that locks only those rows: submits never wait on it."""
    expired = _materialized(
        select(Job.id)
        .where(
            Job.finished_at < func.now() - timedelta(seconds=older_than_s),
            Job.status.in_([status.value for status in TERMINAL_STATUSES]),
        )
        .order_by(Job.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        return int(conn.execute(delete(Job).where(Job.id.in_(select(expired.c.id)))).rowcount)
