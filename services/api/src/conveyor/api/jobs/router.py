"""/v1/jobs routes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response, status
from pydantic import BaseModel

from conveyor.api.auth import revoked_meanwhile
from conveyor.api.deps import PrincipalDep, SessionDep, StateDep, WriterDep
from conveyor.api.jobs import reads, service
from conveyor.api.jobs.schemas import JOB_CREATE_EXAMPLES, JobCreate, JobOut, JobPage, KindName
from conveyor.api.jobs.submit import KeyRevoked, insert_job
from conveyor.api.jobs.waiters import MAX_WAIT_SECONDS, wait_for_job
from conveyor.api.problems import problem_responses
from conveyor.common.models import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# Every route here may answer these: bad key, bad input, rate limit, database down.
_ALWAYS = (401, 422, 429, 503)


def _json(
    body: BaseModel, status_code: int = status.HTTP_200_OK, headers: dict[str, str] | None = None
) -> Response:
    """Rendered here in one pydantic call: returning the model would have FastAPI
    validate it a second time (the routes clients call most; see
    docs/operate/capacity.md). `response_model` still documents the body."""
    return Response(
        body.model_dump_json(),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problem_responses(
        400,
        409,
        413,
        *_ALWAYS,
        descriptions={
            400: "Malformed JSON",
            409: "Another request with this Idempotency-Key is in flight; retry",
            422: "Invalid kind or params, or a reused Idempotency-Key",
        },
    ),
    summary="Submit a job",
)
async def submit_job(
    body: Annotated[JobCreate, Body(openapi_examples=JOB_CREATE_EXAMPLES)],
    principal: WriterDep,
    state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Retries with the same key and body return the same job.",
        ),
    ] = None,
) -> Response:
    settings = state.settings
    try:
        job, created = await insert_job(
            state.pg,
            principal,
            body,
            default_max_attempts=settings.default_max_attempts,
            idempotency_key=idempotency_key,
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        )
    except KeyRevoked:
        raise revoked_meanwhile(state, principal) from None
    headers = {"Location": f"/v1/jobs/{job['id']}"}
    if created:
        state.metrics.jobs_submitted.labels(body.kind).inc()
        if job["status"] == JobStatus.QUEUED:  # a delayed job waits for the scheduler
            await state.publisher.publish(job["id"], body.kind, job["params"])
    else:
        headers["Idempotent-Replayed"] = "true"
    return _json(JobOut.model_validate(dict(job)), status.HTTP_202_ACCEPTED, headers)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses=problem_responses(404, *_ALWAYS),
    summary="Get one job, or wait for it to finish",
)
async def get_job(
    job_id: uuid.UUID,
    principal: PrincipalDep,
    state: StateDep,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Seconds (at most 30) to wait for the job to finish: the answer "
            "comes as soon as it is terminal, or after this long with its current state.",
        ),
    ] = None,
) -> Response:
    if wait:
        job = await wait_for_job(state.job_waiters, state.pg, principal.tenant_id, job_id, wait)
    else:
        job = await reads.fetch_job(state.pg, principal.tenant_id, job_id)
    return _json(JobOut.model_validate(job))


@router.get(
    "",
    response_model=JobPage,
    responses=problem_responses(
        400, *_ALWAYS, descriptions={400: "Not a cursor this API returned"}
    ),
    summary="List jobs",
)
async def list_jobs(
    principal: PrincipalDep,
    state: StateDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    kind: Annotated[KindName | None, Query(description="Only jobs of this kind")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
) -> Response:
    jobs, next_cursor = await reads.list_jobs(
        state.pg, principal.tenant_id, status=status, kind=kind, cursor=cursor, limit=limit
    )
    return _json(JobPage(items=[JobOut.model_validate(j) for j in jobs], next_cursor=next_cursor))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=problem_responses(
        404, 409, *_ALWAYS, descriptions={409: "The job has already finished; says how"}
    ),
    summary="Cancel a scheduled, queued or running job",
)
async def cancel_job(job_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> JobOut:
    return JobOut.model_validate(await service.cancel_job(session, principal.tenant_id, job_id))


@router.post(
    "/{job_id}/retry",
    response_model=JobOut,
    responses=problem_responses(
        404, 409, *_ALWAYS, descriptions={409: "The job is not failed or cancelled"}
    ),
    summary="Run a failed or cancelled job again",
)
async def retry_job(
    job_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, state: StateDep
) -> JobOut:
    """Back to `queued` with a fresh attempt budget; the run before is kept in
    `attempt_history`."""
    job = await service.retry_job(session, principal.tenant_id, job_id)
    # Committed first: a failed publish leaves it queued for the reconciler.
    await state.publisher.publish(job.id, job.kind, job.params)
    return JobOut.model_validate(job)
