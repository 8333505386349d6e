"""Job reads for GET /v1/jobs and GET /v1/jobs/{id}, on the asyncpg pool (see pg.py).

The two routes a client polls or waits on, and a dashboard pages through: one
autocommitted statement each, one round trip. Through SQLAlchemy's async
session the same read took a pre-ping, BEGIN, the SELECT and a ROLLBACK, and
about 4 ms of the API's CPU for one row (docs/operate/capacity.md).

Every query is scoped to the caller's tenant; another tenant's job is a 404,
like one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from conveyor.api.jobs.cursor import decode_cursor, encode_cursor
from conveyor.api.pg import traced
from conveyor.api.problems import Problem
from conveyor.common.models import JOB_PUBLIC_COLUMNS, JobStatus

# The columns JobOut shows (models.JOB_PUBLIC_COLUMNS), for every SELECT and
# RETURNING of this service.
PUBLIC_COLUMNS = ", ".join(JOB_PUBLIC_COLUMNS)
_BY_ID = f"SELECT {PUBLIC_COLUMNS} FROM jobs WHERE id = $1 AND tenant_id = $2"  # noqa: S608
_PAGE = f"SELECT {PUBLIC_COLUMNS} FROM jobs WHERE tenant_id = $1"  # noqa: S608
_ORDER = " ORDER BY created_at DESC, id DESC LIMIT "


def not_found(job_id: uuid.UUID) -> Problem:
    # The same answer for "no such job" and "another tenant's job".
    return Problem(404, "Not Found", f"No job {job_id}.")


async def fetch_job(pg: asyncpg.Pool, tenant_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Any]:
    """The job as JobOut shows it. Raises 404."""
    with traced("SELECT jobs", _BY_ID):
        row = await pg.fetchrow(_BY_ID, job_id, tenant_id)
    if row is None:
        raise not_found(job_id)
    return dict(row)


async def list_jobs(
    pg: asyncpg.Pool,
    tenant_id: uuid.UUID,
    *,
    status: JobStatus | None,
    kind: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, and the cursor of the next (None on the last).

    Keyset paging on (created_at, id): a page 1,000 pages deep costs what the
    first does, through the (tenant_id, created_at, id) index or, filtered by
    status, the (tenant_id, status, created_at, id) one (migration 0006).
    """
    # The text is built from fixed fragments only, so there are eight
    # statements at most, each prepared once per connection.
    sql, args = _PAGE, list[Any]([tenant_id])
    if status is not None:
        args.append(status.value)
        sql += f" AND status = ${len(args)}"
    if kind is not None:
        args.append(kind)
        sql += f" AND kind = ${len(args)}"
    if cursor is not None:
        args.extend(decode_cursor(cursor))
        sql += f" AND (created_at, id) < (${len(args) - 1}, ${len(args)})"
    args.append(limit + 1)
    sql += f"{_ORDER}${len(args)}"
    with traced("SELECT jobs", sql):
        rows = [dict(row) for row in await pg.fetch(sql, *args)]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last["created_at"], last["id"])
