"""The job kinds' implementations. Results follow docs/design.md, "Job kinds", exactly."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from typing import Any

from conveyor.common.kinds import FailParams, HashParams, PrimesParams, SleepParams


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

HANDLERS: dict[str, Handler] = {
    "sleep": run_sleep,
    "hash": run_hash,
    "primes": run_primes,
    "fail": run_fail,
}
