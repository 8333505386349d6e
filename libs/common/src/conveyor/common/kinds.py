"""Job kinds: the contract between API and worker, one registry entry per kind.

An entry (`KindSpec`) holds everything about a kind: its params model, the
worker's handler (by name, so this package imports no service), its time
limit and its example. Everything else derives from `KINDS`: the API's
request union, `kind` enums and examples (api/jobs/schemas.py, so the OpenAPI
document), the message's time limits (run_job_message.py) and the worker's
handler table (worker/handlers.py). docs/develop/job-kinds.md walks through
adding one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class KindParams(BaseModel):
    """The base of every kind's params model."""

    # Strict: "5" is not 5, and unknown params are errors, not silently dropped.
    model_config = ConfigDict(extra="forbid", strict=True)


class SleepParams(KindParams):
    ms: int = Field(ge=0, le=60_000, description="How long to sleep, in milliseconds.")


class HashParams(KindParams):
    data: str = Field(default="", max_length=65_536, description="The bytes to hash (UTF-8).")
    iterations: int = Field(ge=1, le=10_000_000, description="How many SHA-256 rounds.")


class PrimesParams(KindParams):
    limit: int = Field(ge=2, le=100_000_000, description="Count the primes up to this number.")


class FailParams(KindParams):
    rate: float = Field(ge=0, le=1, description="Probability that one attempt fails.")
    seed: int | None = Field(
        default=None, description="Makes the outcome of each attempt reproducible."
    )


# A hard limit per attempt, in seconds: a number, or a function of the job's
# stored params (a JSON object the params model has validated).
TimeLimit = float | Callable[[dict[str, Any]], float]
# The soft limit (SoftTimeLimitExceeded, a retryable failure) fires this much earlier.
SOFT_LIMIT_MARGIN_S = 5.0


@dataclass(frozen=True)
class Example:
    """A request for /docs: `{"kind": ..., "params": params}`, plus max_attempts if set."""

    summary: str
    params: dict[str, Any]
    max_attempts: int | None = None


@dataclass(frozen=True)
class KindSpec:
    name: str
    params_model: type[KindParams]
    # `module:function`, resolved and checked by the worker when it starts;
    # called as handler(params_model instance, attempt number) -> result dict.
    handler: str
    # One line for /docs: what the kind does and what its result holds.
    description: str
    profile: Literal["io", "cpu", "fault"]
    time_limit_s: TimeLimit
    example: Example
    # The queue its jobs wait in (queues.py), so a worker pool serves it;
    # KIND_QUEUES overrides it per deployment.
    queue: str = "default"

    def time_limits(self, params: dict[str, Any]) -> tuple[float, float]:
        """(soft, hard) seconds for one attempt of a job with these params."""
        limit = self.time_limit_s
        hard = limit(params) if callable(limit) else limit
        return hard - SOFT_LIMIT_MARGIN_S, hard

    def example_request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"kind": self.name, "params": self.example.params}
        if self.example.max_attempts is not None:
            request["max_attempts"] = self.example.max_attempts
        return request


_HANDLERS = "conveyor.worker.handlers"

_BUILT_IN = (
    KindSpec(
        name="sleep",
        params_model=SleepParams,
        handler=f"{_HANDLERS}:run_sleep",
        description="IO-bound: sleeps `ms` milliseconds; result `{slept_ms}`.",
        profile="io",
        # The sleep itself, plus the 30 s every short kind gets.
        time_limit_s=lambda params: 30 + params["ms"] / 1000,
        example=Example("IO-bound: sleep 250 ms", {"ms": 250}),
        queue="io",
    ),
    KindSpec(
        name="hash",
        params_model=HashParams,
        handler=f"{_HANDLERS}:run_hash",
        description="CPU-bound: `iterations` rounds of SHA-256 over `data`; result `{digest}`.",
        profile="cpu",
        time_limit_s=300,
        example=Example("CPU-bound: 100k SHA-256 rounds", {"data": "hello", "iterations": 100000}),
        queue="cpu",
    ),
    KindSpec(
        name="primes",
        params_model=PrimesParams,
        handler=f"{_HANDLERS}:run_primes",
        description="CPU-bound: counts the primes up to `limit`; result `{count}`.",
        profile="cpu",
        time_limit_s=300,
        example=Example("CPU-bound: count primes up to 1,000,000", {"limit": 1000000}),
        queue="cpu",
    ),
    KindSpec(
        name="fail",
        params_model=FailParams,
        handler=f"{_HANDLERS}:run_fail",
        description=(
            "Fault injection: each attempt fails (and is retried) with probability `rate`; "
            "result `{succeeded_on_attempt}`."
        ),
        profile="fault",
        time_limit_s=30,
        example=Example(
            "Fault injection: fail half the attempts", {"rate": 0.5, "seed": 7}, max_attempts=5
        ),
        queue="default",
    ),
)

KINDS: dict[str, KindSpec] = {spec.name: spec for spec in _BUILT_IN}


def register_kind(spec: KindSpec) -> None:
    """Add a kind from outside this module (a plugin, a test).

    Call it before the API's app or the worker's Celery app is imported: the
    request union and the handler table are derived from `KINDS` at import.
    """
    if spec.name in KINDS:
        raise ValueError(f"job kind {spec.name!r} is already registered")
    KINDS[spec.name] = spec


MaxAttempts = Annotated[
    int, Field(ge=1, le=20, description="Attempts before the job ends `failed`.")
]
