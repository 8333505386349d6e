"""Request and response bodies for /v1/jobs, with examples for /docs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    TypeAlias,
    Union,
    get_args,
    get_type_hints,
)

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
)

from conveyor.common.kinds import KINDS, KindParams, KindSpec, MaxAttempts
from conveyor.common.models import JOB_PUBLIC_COLUMNS, Job, JobStatus

# Everything per kind below derives from the registry (conveyor.common.kinds):
# a kind registered before this module is imported is in the union, the
# `kind` enums and the examples, with nothing to edit here.


# How far ahead a job may be delayed (docs/design.md, "Interfaces").
MAX_DELAY_SECONDS = 30 * 86400
_PAST = datetime(2000, 1, 1, tzinfo=UTC)


class JobCreateBase(BaseModel):
    """The shape of every kind's request; each kind narrows `kind` and `params`."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    params: KindParams
    max_attempts: MaxAttempts | None = None
    run_at: AwareDatetime | None = Field(
        default=None,
        description="Run no earlier than this RFC 3339 time (with its offset), at most 30 days"
        " ahead; a time already past runs at once. Not with `delay_seconds`.",
    )
    delay_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        description="Run this many seconds after the submit (0 to 2592000, 30 days)."
        " Not with `run_at`.",
    )

    @field_validator("run_at")
    @classmethod
    def _within_horizon(cls, value: datetime | None) -> datetime | None:
        # Checked against this server's clock; the database's decides when it is due.
        if value is not None and value > datetime.now(UTC) + timedelta(seconds=MAX_DELAY_SECONDS):
            raise ValueError("must be at most 30 days ahead")
        # Any past time means "now"; a floor keeps year-1 times encodable in UTC.
        return None if value is None else max(value, _PAST)

    @field_validator("delay_seconds")
    @classmethod
    def _not_both(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("run_at") is not None:
            raise ValueError("give either run_at or delay_seconds, not both")
        return value


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


class JobOutBase(BaseModel):
    """A job as the API shows it. `JobOut` adds one field per public column."""

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
                    "run_at": None,
                    "attempt_history": [],
                }
            ]
        },
    )


# The API's type where it is narrower than the column's (a str in the table).
_NARROWER: dict[str, Any] = {"kind": KindName, "status": JobStatus}


def _job_out_fields() -> dict[str, Any]:
    """One required field per public column of models.Job, typed as its
    `Mapped[...]` annotation says: the table is the one list of columns."""
    mapped = get_type_hints(Job)
    return {
        name: (_NARROWER.get(name, get_args(mapped[name])[0]), ...) for name in JOB_PUBLIC_COLUMNS
    }


if TYPE_CHECKING:
    JobOut: TypeAlias = JobOutBase
else:
    JobOut = create_model("JobOut", __base__=JobOutBase, __module__=__name__, **_job_out_fields())


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
