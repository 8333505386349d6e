"""/v1/stats: the caller's job counts by status, and the shared queue depth."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.deps import PrincipalDep, SessionDep, StateDep
from conveyor.api.jobs.service import count_by_status
from conveyor.common.tasks import JOBS_QUEUE

router = APIRouter(prefix="/v1", tags=["stats"])


class Stats(BaseModel):
    counts: dict[str, int] = Field(
        description="This tenant's jobs by status",
        examples=[{"queued": 3, "running": 2, "succeeded": 40, "failed": 1, "cancelled": 0}],
    )
    queue_depth: int | None = Field(
        description="Messages waiting in the broker for any tenant; null if it is unreachable"
    )


@router.get("/stats", response_model=Stats, summary="Counts by status and queue depth")
async def stats(principal: PrincipalDep, session: SessionDep, state: StateDep) -> Stats:
    counts = await count_by_status(session, principal.tenant_id)
    try:
        depth: int | None = int(await state.redis.llen(JOBS_QUEUE))
    except Exception:
        depth = None
    return Stats(counts=counts, queue_depth=depth)
