"""Job kinds and their parameter schemas: the contract between API and worker.

The API validates with these models; the worker runs the matching handler.
Limits follow the table in docs/design.md, "Job kinds".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    # Strict: "5" is not 5, and unknown params are errors, not silently dropped.
    model_config = ConfigDict(extra="forbid", strict=True)


class SleepParams(_Params):
    ms: int = Field(ge=0, le=60_000, description="How long to sleep, in milliseconds.")


class HashParams(_Params):
    data: str = Field(default="", max_length=65_536, description="The bytes to hash (UTF-8).")
    iterations: int = Field(ge=1, le=10_000_000, description="How many SHA-256 rounds.")


class PrimesParams(_Params):
    limit: int = Field(ge=2, le=100_000_000, description="Count the primes up to this number.")


class FailParams(_Params):
    rate: float = Field(ge=0, le=1, description="Probability that one attempt fails.")
    seed: int | None = Field(
        default=None, description="Makes the outcome of each attempt reproducible."
    )


@dataclass(frozen=True)
class KindSpec:
    name: str
    params_model: type[_Params]
    profile: str
    # Hard limit per attempt, seconds; the soft limit fires a little earlier.
    time_limit_s: float

    def time_limits(self, params: dict[str, Any]) -> tuple[float, float]:
        hard = self.time_limit_s
        if self.name == "sleep":
            hard += params.get("ms", 0) / 1000
        return hard - 5, hard


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("sleep", SleepParams, "io", time_limit_s=30),
        KindSpec("hash", HashParams, "cpu", time_limit_s=300),
        KindSpec("primes", PrimesParams, "cpu", time_limit_s=300),
        KindSpec("fail", FailParams, "fault", time_limit_s=30),
    )
}

KindName = Literal["sleep", "hash", "primes", "fail"]

MaxAttempts = Annotated[
    int, Field(ge=1, le=20, description="Attempts before the job ends `failed`.")
]
