"""Request and response bodies for /v1/jobs, with examples for /docs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from conveyor.common.kinds import KINDS, KindParams, KindSpec, MaxAttempts
from conveyor.common.models import JobStatus

# Everything per kind below derives from the registry (conveyor.common.kinds):
# a kind registered before this module is imported is in the union, the
# `kind` enums and the examples, with nothing to edit here.


class JobCreateBase(BaseModel):
    """The shape of every kind's request; each kind narrows `kind` and `params`."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    params: KindParams
    max_attempts: MaxAttempts | None = None


def _request_model(spec: KindSpec) -> type[JobCreateBase]:
    camel = "".join(part.capitalize() for part in spec.name.split("_"))
    tag: Any = Literal[spec.name]
    return create_model(
        f"{camel}JobCreate",
        __base__=JobCreateBase,
        __doc__=spec.description,
        kind=(tag, ...),
        params=(spec.params_model, ...),
    )


def job_create_union(kinds: Iterable[KindSpec]) -> Any:
    """POST /v1/jobs's body: one request model per kind, discriminated on `kind`."""
    models = tuple(_request_model(spec) for spec in kinds)
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007 - built at runtime


def kind_name(kinds: Iterable[KindSpec]) -> Any:
    """The `kind` enum: Literal["sleep", "hash", ...]."""
    return Literal[tuple(spec.name for spec in kinds)]


def create_examples(kinds: Iterable[KindSpec]) -> dict[str, dict[str, Any]]:
    """OpenAPI examples for POST /v1/jobs, one per kind."""
    return {
        spec.name: {"summary": spec.example.summary, "value": spec.example_request()}
        for spec in kinds
    }


if TYPE_CHECKING:
    JobCreate: TypeAlias = JobCreateBase
    KindName: TypeAlias = str
else:
    JobCreate = job_create_union(KINDS.values())
    KindName = kind_name(KINDS.values())

JOB_CREATE_EXAMPLES = create_examples(KINDS.values())


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
