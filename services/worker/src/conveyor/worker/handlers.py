"""The job kinds' implementations. Results follow docs/design.md, "Job kinds", exactly.

Each kind's registry entry (conveyor.common.kinds) names its handler here as
`module:function`; `resolve_handlers` looks them all up when the worker starts.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from conveyor.common.kinds import FailParams, HashParams, KindSpec, PrimesParams, SleepParams


class TransientJobError(Exception):
    """An attempt failed in a way worth retrying."""


def run_sleep(params: SleepParams, attempt: int) -> dict[str, Any]:
    time.sleep(params.ms / 1000)
    return {"slept_ms": params.ms}


def run_hash(params: HashParams, attempt: int) -> dict[str, Any]:
    digest = params.data.encode()
    for _ in range(params.iterations):
        digest = hashlib.sha256(digest).digest()
    return {"digest": digest.hex()}


def count_primes(limit: int) -> int:
    """Sieve of Eratosthenes over odd numbers only: limit/2 bytes of memory."""
    if limit < 2:
        return 0
    size = (limit - 1) // 2  # index i stands for 2*i + 3
    sieve = bytearray([1]) * size
    for i in range(math.isqrt(limit) // 2):
        if sieve[i]:
            p = 2 * i + 3
            start = (p * p - 3) // 2
            sieve[start::p] = bytes(len(range(start, size, p)))
    return 1 + sum(sieve)


def run_primes(params: PrimesParams, attempt: int) -> dict[str, Any]:
    return {"count": count_primes(params.limit)}


def run_fail(params: FailParams, attempt: int) -> dict[str, Any]:
    # Seeded per attempt: the same seed fails the same attempts every time.
    rng = random.Random(f"{params.seed}:{attempt}") if params.seed is not None else random  # noqa: S311
    if rng.random() < params.rate:
        raise TransientJobError(f"injected failure on attempt {attempt} (rate {params.rate})")
    return {"succeeded_on_attempt": attempt}


Handler = Callable[[Any, int], dict[str, Any]]


def resolve_handler(spec: KindSpec) -> Handler:
    module_name, sep, name = spec.handler.partition(":")
    handler = getattr(importlib.import_module(module_name), name, None) if sep else None
    if not callable(handler):
        raise LookupError(
            f"job kind {spec.name!r}: handler {spec.handler!r} is not a `module:function` "
            "that exists"
        )
    return handler  # type: ignore[no-any-return]


def resolve_handlers(kinds: Iterable[KindSpec]) -> dict[str, Handler]:
    """Every kind's handler, by kind name; raises if one is missing."""
    return {spec.name: resolve_handler(spec) for spec in kinds}
