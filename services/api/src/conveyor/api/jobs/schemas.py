"""Request and response bodies for /v1/jobs, with examples for /docs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.common.kinds import (
    FailParams,
    HashParams,
    KindName,
    MaxAttempts,
    PrimesParams,
    SleepParams,
)
from conveyor.common.models import JobStatus


class _JobCreateBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempts: MaxAttempts | None = None


class SleepJobCreate(_JobCreateBase):
    kind: Literal["sleep"]
    params: SleepParams


class HashJobCreate(_JobCreateBase):
    kind: Literal["hash"]
    params: HashParams


class PrimesJobCreate(_JobCreateBase):
    kind: Literal["primes"]
    params: PrimesParams


class FailJobCreate(_JobCreateBase):
    kind: Literal["fail"]
    params: FailParams


JobCreate = Annotated[
    SleepJobCreate | HashJobCreate | PrimesJobCreate | FailJobCreate,
    Field(discriminator="kind"),
]

JOB_CREATE_EXAMPLES: dict[str, dict[str, Any]] = {
    "sleep": {
        "summary": "IO-bound: sleep 250 ms",
        "value": {"kind": "sleep", "params": {"ms": 250}},
    },
    "hash": {
        "summary": "CPU-bound: 100k SHA-256 rounds",
        "value": {"kind": "hash", "params": {"data": "hello", "iterations": 100000}},
    },
    "primes": {
        "summary": "CPU-bound: count primes up to 1,000,000",
        "value": {"kind": "primes", "params": {"limit": 1000000}},
    },
    "fail": {
        "summary": "Fault injection: fail half the attempts",
        "value": {"kind": "fail", "params": {"rate": 0.5, "seed": 7}, "max_attempts": 5},
    },
}


class JobOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b7a3c0e-3f4e-4c59-9d7e-0c1f3f0f7e11",
                    "kind": "sleep",
                    "params": {"ms": 250},
                    "status": "succeeded",
                    "result": {"slept_ms": 250},
                    "error": None,
                    "attempts": 1,
                    "max_attempts": 3,
                    "worker_id": "worker-4242@host/4250",
                    "created_at": "2026-11-27T12:00:00Z",
                    "updated_at": "2026-11-27T12:00:00.3Z",
                    "started_at": "2026-11-27T12:00:00.05Z",
                    "finished_at": "2026-11-27T12:00:00.3Z",
                }
            ]
        },
    )

    id: uuid.UUID
    kind: KindName
    params: dict[str, Any]
    status: JobStatus
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
