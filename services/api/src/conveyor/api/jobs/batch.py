"""POST /v1/jobs:batch: up to 1000 jobs in one request and one transaction,
so load generators can outrun single submits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status
from pydantic import BaseModel, ConfigDict, Field

from conveyor.api.auth import revoked_meanwhile
from conveyor.api.deps import StateDep, WriterDep
from conveyor.api.jobs.schemas import JobCreate, JobOut
from conveyor.api.jobs.submit import KeyRevoked, insert_jobs
from conveyor.api.problems import problem_responses
from conveyor.common.models import JobStatus

MAX_BATCH = 1000
router = APIRouter(prefix="/v1", tags=["jobs"])


class JobBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jobs: list[JobCreate] = Field(min_length=1, max_length=MAX_BATCH)


class JobBatchOut(BaseModel):
    items: list[JobOut]


_EXAMPLE = {
    "jobs": [
        {"kind": "sleep", "params": {"ms": 100}},
        {"kind": "hash", "params": {"data": "a", "iterations": 1000}},
    ]
}


@router.post(
    "/jobs:batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobBatchOut,
    summary="Submit up to 1000 jobs at once",
    responses=problem_responses(
        400,
        401,
        413,
        422,
        429,
        503,
        descriptions={400: "Malformed JSON", 422: "An invalid job; none is stored"},
    ),
)
async def submit_batch(
    body: Annotated[JobBatchCreate, Body(examples=[_EXAMPLE])],
    principal: WriterDep,
    state: StateDep,
) -> JobBatchOut:
    """All or nothing: one invalid job rejects the whole batch (422, naming `jobs.N...`)."""
    try:
        inserted = await insert_jobs(
            state.pg,
            principal,
            body.jobs,
            default_max_attempts=state.settings.default_max_attempts,
        )
    except KeyRevoked:
        raise revoked_meanwhile(state, principal) from None
    for job in inserted:
        state.metrics.jobs_submitted.labels(job["kind"]).inc()
    await state.publisher.publish_many(
        [
            (job["id"], job["kind"], job["params"])
            for job in inserted
            if job["status"] == JobStatus.QUEUED  # delayed ones wait for the scheduler
        ]
    )
    return JobBatchOut(items=[JobOut.model_validate(dict(job)) for job in inserted])
