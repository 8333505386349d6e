"""/v1/stats: the caller's job counts, throughput, latency and recent failures,
plus the shared queue depth and the workers online. The dashboard polls it."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from conveyor.api.deps import PrincipalDep, SessionDep, StateDep
from conveyor.api.jobs.service import count_by_status
from conveyor.api.problems import problem_responses
from conveyor.common.models import JobStatus, sql_statuses
from conveyor.common.tasks import JOBS_QUEUE, WORKER_PRESENCE_PREFIX

router = APIRouter(prefix="/v1", tags=["stats"])

THROUGHPUT_WINDOW_S = 10
LATENCY_WINDOW_S = 60

_RECENT = text(
    f"""
    SELECT
      count(*) FILTER (WHERE finished_at > now() - make_interval(secs => :throughput_s)),
      percentile_cont(0.95) WITHIN GROUP (
        ORDER BY extract(epoch FROM finished_at - created_at)) * 1000
    FROM jobs
    WHERE tenant_id = :tenant AND finished_at > now() - make_interval(secs => :latency_s)
      AND status = {sql_statuses(JobStatus.SUCCEEDED)}
    """  # noqa: S608 - constants only
)
_FAILURES = text(
    f"""
    SELECT id, kind, error, finished_at FROM jobs
    WHERE tenant_id = :tenant AND status = {sql_statuses(JobStatus.FAILED)}
      AND finished_at IS NOT NULL
    ORDER BY finished_at DESC LIMIT 5
    """  # noqa: S608
)


class Failure(BaseModel):
    id: uuid.UUID
    kind: str
    error: str | None
    finished_at: datetime


class Stats(BaseModel):
    counts: dict[str, int] = Field(
        description="This tenant's jobs by status",
        examples=[
            {
                "scheduled": 5,
                "queued": 3,
                "running": 2,
                "succeeded": 40,
                "failed": 1,
                "cancelled": 0,
            }
        ],
    )
    queue_depth: int | None = Field(
        description="Messages waiting in the broker for any tenant; null if it is unreachable"
    )
    workers_online: int | None = Field(
        description="Worker processes with a fresh heartbeat; null if the broker is unreachable"
    )
    throughput_per_s: float = Field(
        description=f"This tenant's jobs finished per second over the last {THROUGHPUT_WINDOW_S} s"
    )
    latency_p95_ms: float | None = Field(
        description=f"p95 of submit-to-finish time of jobs that succeeded in the last "
        f"{LATENCY_WINDOW_S} s; null when none did"
    )
    recent_failures: list[Failure] = Field(description="The last five failed jobs")


async def _broker_numbers(state: StateDep) -> tuple[int | None, int | None]:
    try:
        depth = int(await state.redis.llen(JOBS_QUEUE))
        workers = 0
        async for _ in state.redis.scan_iter(match=f"{WORKER_PRESENCE_PREFIX}*", count=100):
            workers += 1
        return depth, workers
    except Exception:  # the broker is down: say so with nulls, not an error
        return None, None


@router.get(
    "/stats",
    response_model=Stats,
    responses=problem_responses(401, 429, 503),
    summary="Counts, throughput, latency, queue depth",
)
async def stats(principal: PrincipalDep, session: SessionDep, state: StateDep) -> Stats:
    tenant = {"tenant": principal.tenant_id}
    counts = await count_by_status(session, principal.tenant_id)
    windows = {"throughput_s": THROUGHPUT_WINDOW_S, "latency_s": LATENCY_WINDOW_S}
    finished_recently, p95 = (await session.execute(_RECENT, tenant | windows)).one()
    failures = (await session.execute(_FAILURES, tenant)).mappings().all()
    depth, workers = await _broker_numbers(state)
    return Stats(
        counts=counts,
        queue_depth=depth,
        workers_online=workers,
        throughput_per_s=round(int(finished_recently) / THROUGHPUT_WINDOW_S, 2),
        latency_p95_ms=None if p95 is None else round(float(p95), 1),
        recent_failures=[Failure.model_validate(dict(row)) for row in failures],
    )
