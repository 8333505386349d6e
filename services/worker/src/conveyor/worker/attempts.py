"""One job attempt's SQL, on the worker's hot path: claim, renew, succeed, fail.

Each is one conditional UPDATE, sent alone on an autocommit connection (see
`pg`): it is its own transaction, so one round trip and one commit per state
change (no BEGIN, no COMMIT, no liveness ping). The statements are fixed SQL
text: building them with SQLAlchemy cost more CPU than the rest of a job.
Two deliveries of one job can never both run it, and a terminal job never
changes again: the claim needs `queued`, and every later write is fenced on
this very attempt.

A statement that `pg` sends twice because its connection broke may have run
the first time: a claim sent again then finds the job running (a no-op claim:
its lease runs out and the reconciler requeues it), and an outcome sent again
finds it terminal (reported lost). Duplicates, never a second outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from conveyor.common.models import JobStatus, sql_statuses
from conveyor.worker.pg import Connections

# Statuses are JobStatus's, written into the fixed text once, here (no input
# ever goes into the text: values travel as parameters).
_QUEUED = sql_statuses(JobStatus.QUEUED)
_RUNNING = sql_statuses(JobStatus.RUNNING)
_SUCCEEDED = sql_statuses(JobStatus.SUCCEEDED)
_FAILED = sql_statuses(JobStatus.FAILED)
_CANCELLED = sql_statuses(JobStatus.CANCELLED)

# The claim reaches its row by primary key whatever the statistics say. A
# plain `status = 'queued'` matches the indexes on live rows, and statistics
# taken while nothing was queued (a quiet spell, a bulk load's VACUUM) cost
# that at one row: the planner then scanned the whole backlog for every claim,
# quadratic in the backlog (2,650 buffers a claim at 3,000 queued on 300,000
# rows, against 20). As an expression, `status || ''`, no index matches it.
_CLAIM = f"""\
UPDATE jobs SET status = {_RUNNING}, attempts = attempts + 1, worker_id = %(worker)s,
 lease_expires_at = now() + make_interval(secs => %(lease)s),
 started_at = coalesce(started_at, now()), updated_at = now()
WHERE id = %(id)s AND status || '' = {_QUEUED} AND attempts < max_attempts
RETURNING kind, params, attempts, max_attempts"""  # noqa: S608 - constants only

# Every later write is fenced: only the holder of this very attempt may
# write (the WHERE clause below, the same in each statement).
_FENCE = f"""\
WHERE id = %(id)s AND status = {_RUNNING} AND worker_id = %(worker)s AND attempts = %(attempt)s"""

_RENEW = f"""\
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
{_FENCE}"""  # noqa: S608

# This attempt's job was cancelled by the API (its fence minus the status).
_IS_CANCELLED = f"""\
SELECT 1 FROM jobs WHERE id = %(id)s AND status = {_CANCELLED}
 AND worker_id = %(worker)s AND attempts = %(attempt)s"""  # noqa: S608

_SUCCEED = f"""\
UPDATE jobs SET status = {_SUCCEEDED}, result = %(result)s, error = NULL,
 lease_expires_at = NULL, finished_at = now(), updated_at = now()
{_FENCE}"""  # noqa: S608

_RETRY = f"""\
UPDATE jobs SET status = {_QUEUED}, error = %(error)s, lease_expires_at = NULL,
 run_after = now() + make_interval(secs => %(retry_in)s), updated_at = now()
{_FENCE}"""  # noqa: S608

_FAIL = f"""\
UPDATE jobs SET status = {_FAILED}, error = %(error)s, lease_expires_at = NULL,
 finished_at = now(), updated_at = now()
{_FENCE}"""  # noqa: S608


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str

    def fence(self) -> dict[str, Any]:
        return {"id": self.id, "worker": self.worker_id, "attempt": self.attempt}


def claim(db: Connections, job_id: uuid.UUID, worker_id: str, lease_s: float) -> ClaimedJob | None:
    """queued -> running, attempts+1, with a lease. None if someone else has it or it is done."""
    _, row = db.execute(_CLAIM, {"id": job_id, "worker": worker_id, "lease": float(lease_s)})
    if row is None:
        return None
    kind, params, attempts, max_attempts = row
    return ClaimedJob(job_id, kind, params, attempts, max_attempts, worker_id)


def renew_lease(db: Connections, job: ClaimedJob, lease_s: float) -> bool:
    rowcount, _ = db.execute(_RENEW, {**job.fence(), "lease": float(lease_s)})
    return rowcount == 1


def is_cancelled(db: Connections, job: ClaimedJob) -> bool:
    """True once the API has cancelled this very attempt (the lease keeper asks)."""
    _, row = db.execute(_IS_CANCELLED, job.fence())
    return row is not None


def succeed(db: Connections, job: ClaimedJob, result: dict[str, Any]) -> bool:
    rowcount, _ = db.execute(_SUCCEED, {**job.fence(), "result": Jsonb(result)})
    return rowcount == 1


def fail(
    db: Connections, job: ClaimedJob, error: str, *, retry_in_s: float | None
) -> JobStatus | None:
    """Record a failed attempt: back to queued (with backoff) or failed for good.

    Returns the new status, or None if this worker no longer held the job.
    """
    can_retry = retry_in_s is not None and job.attempt < job.max_attempts
    params: dict[str, Any] = {**job.fence(), "error": error[:4000]}
    if can_retry:
        params["retry_in"] = float(retry_in_s or 0.0)
    rowcount, _ = db.execute(_RETRY if can_retry else _FAIL, params)
    if rowcount != 1:
        return None
    return JobStatus.QUEUED if can_retry else JobStatus.FAILED
