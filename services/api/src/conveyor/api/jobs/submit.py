"""Job inserts for POST /v1/jobs and /v1/jobs:batch, on the asyncpg pool (see pg.py).

A single submit without an Idempotency-Key is one autocommitted INSERT: one
round trip. With a key, the lookup and the insert share a transaction.

Every INSERT re-checks that the caller's API key still stands (the `EXISTS`
guard): submits authenticate from a short cache (auth.authenticate_writer), and a key
revoked meanwhile must store nothing. Such an insert returns no row, and the
caller answers 401.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from conveyor.api.jobs.reads import PUBLIC_COLUMNS
from conveyor.api.jobs.schemas import JobCreate
from conveyor.api.pg import traced
from conveyor.api.principal import Principal
from conveyor.api.problems import Problem
from conveyor.common.job_ids import new_job_id
from conveyor.common.models import JobStatus, sql_statuses

# Fixed SQL text, built once here: RETURNING and SELECT list the columns JobOut
# shows (reads.PUBLIC_COLUMNS), and statuses come from JobStatus.
_QUEUED = sql_statuses(JobStatus.QUEUED)
_SCHEDULED = sql_statuses(JobStatus.SCHEDULED)
# A delayed job's due time, on the database's clock (the one the scheduler
# reads): the request's run_at, or now + delay_seconds. A due time not in the
# future is queued at once; run_at never reads earlier than the submit.
_DUE = "coalesce({run_at}::timestamptz, now() + make_interval(secs => {delay}::float8))"
_STATUS = f"CASE WHEN due > now() THEN {_SCHEDULED} ELSE {_QUEUED} END"
_RUN_AT = "CASE WHEN due IS NULL THEN NULL ELSE greatest(due, now()) END"
_INSERT = f"""
INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts,
                  idempotency_key, request_hash, run_at)
SELECT $2::uuid, $3::uuid, $4::text, $5::jsonb, {_STATUS}, 0, $6::int, $7::text, $8::text,
       {_RUN_AT}
FROM (SELECT {_DUE.format(run_at="$9", delay="$10")} AS due) AS d
WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING {PUBLIC_COLUMNS}
"""  # noqa: S608 - no input in the text: the columns and status are constants
_BY_KEY = f"""
SELECT {PUBLIC_COLUMNS}, request_hash
FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2
"""  # noqa: S608
_RELEASE_KEY = "UPDATE jobs SET idempotency_key = NULL WHERE id = $1"
_KEY_CHECK = "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL)"
_INSERT_MANY = f"""
INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts, run_at)
SELECT id, $2, kind, params, {_STATUS}, 0, max_attempts, {_RUN_AT}
FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::int[], $7::timestamptz[], $8::float8[])
     WITH ORDINALITY AS j(id, kind, params, max_attempts, run_at, delay, n),
     LATERAL (SELECT {_DUE.format(run_at="j.run_at", delay="j.delay")} AS due) AS d
WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL)
ORDER BY n
RETURNING {PUBLIC_COLUMNS}
"""  # noqa: S608


class _LostRace(Exception):
    """A concurrent request with the same Idempotency-Key inserted first."""


class KeyRevoked(Exception):
    """The caller's API key was revoked after it was last read."""


def request_fingerprint(body: JobCreate, max_attempts: int) -> str:
    canonical: dict[str, Any] = {
        "kind": body.kind,
        "params": body.params.model_dump(mode="json"),
        "max_attempts": max_attempts,
    }
    # Only when given, so a plain request's fingerprint is what it always was.
    if body.run_at is not None:
        canonical["run_at"] = body.run_at.isoformat()
    if body.delay_seconds is not None:
        canonical["delay_seconds"] = body.delay_seconds
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _replay_or_conflict(existing: asyncpg.Record, fingerprint: str, key: str) -> asyncpg.Record:
    if existing["request_hash"] != fingerprint:
        raise Problem(
            422,
            "Idempotency key reused",
            f"Idempotency-Key {key!r} was used with a different request body.",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )
    return existing


async def insert_job(
    pool: asyncpg.Pool,
    principal: Principal,
    body: JobCreate,
    *,
    default_max_attempts: int,
    idempotency_key: str | None,
    idempotency_ttl: timedelta,
) -> tuple[asyncpg.Record, bool]:
    """Insert a queued (or, delayed, scheduled) job, committed on return.
    Returns (job row, created). Raises KeyRevoked."""
    tenant_id, key_id = principal.tenant_id, principal.key_id
    max_attempts = body.max_attempts or default_max_attempts
    params = body.params.model_dump(mode="json")
    if idempotency_key is None:
        with traced("INSERT jobs", _INSERT):
            new_id = new_job_id()
            row = await pool.fetchrow(
                _INSERT,
                key_id,
                new_id,
                tenant_id,
                body.kind,
                params,
                max_attempts,
                None,
                None,
                body.run_at,
                body.delay_seconds,
            )
        if row is None:  # no Idempotency-Key, so no conflict: the key's guard said no
            raise KeyRevoked
        return row, True

    fingerprint = request_fingerprint(body, max_attempts)
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                if not await conn.fetchval(_KEY_CHECK, key_id):
                    raise KeyRevoked
                with traced("SELECT jobs", _BY_KEY):
                    existing = await conn.fetchrow(_BY_KEY, tenant_id, idempotency_key)
                if existing is not None:
                    if existing["created_at"] > datetime.now(UTC) - idempotency_ttl:
                        return _replay_or_conflict(existing, fingerprint, idempotency_key), False
                    # Expired: the old job keeps its data but gives up the key.
                    await conn.execute(_RELEASE_KEY, existing["id"])
                with traced("INSERT jobs", _INSERT):
                    row = await conn.fetchrow(
                        _INSERT,
                        key_id,
                        new_job_id(),
                        tenant_id,
                        body.kind,
                        params,
                        max_attempts,
                        idempotency_key,
                        fingerprint,
                        body.run_at,
                        body.delay_seconds,
                    )
                if row is None:
                    raise _LostRace
                return row, True
        except _LostRace:
            winner = await conn.fetchrow(_BY_KEY, tenant_id, idempotency_key)
    if winner is None:
        raise Problem(409, "Conflict", "Concurrent request with this Idempotency-Key; retry.")
    return _replay_or_conflict(winner, fingerprint, idempotency_key), False


async def insert_jobs(
    pool: asyncpg.Pool,
    principal: Principal,
    jobs: Sequence[JobCreate],
    *,
    default_max_attempts: int,
) -> list[asyncpg.Record]:
    """Insert all of them in one statement (so one transaction), in order.
    Raises KeyRevoked."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for job in jobs:
        columns[0].append(new_job_id())
        columns[1].append(job.kind)
        columns[2].append(job.params.model_dump(mode="json"))
        columns[3].append(job.max_attempts or default_max_attempts)
        columns[4].append(job.run_at)
        columns[5].append(job.delay_seconds)
    with traced("INSERT jobs", _INSERT_MANY):
        rows: list[asyncpg.Record] = await pool.fetch(
            _INSERT_MANY, principal.key_id, principal.tenant_id, *columns
        )
    if jobs and not rows:
        raise KeyRevoked
    return rows
