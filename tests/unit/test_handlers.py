"""The kinds' handlers against independent computations."""

from __future__ import annotations

import hashlib

import pytest

from conveyor.common.kinds import KINDS, FailParams, HashParams, PrimesParams
from conveyor.worker.handlers import TransientJobError, count_primes, run_fail, run_hash


def naive_prime_count(n: int) -> int:
    return sum(1 for k in range(2, n + 1) if all(k % d for d in range(2, int(k**0.5) + 1)))


@pytest.mark.parametrize("limit", [2, 3, 4, 5, 9, 10, 11, 25, 97, 100, 1000, 4096, 7919, 7920])
def test_count_primes(limit: int) -> None:
    assert count_primes(limit) == naive_prime_count(limit)


def test_count_primes_known_large_value() -> None:
    assert count_primes(1_000_000) == 78498  # a well-known value of pi(10^6)
    assert run_primes_result(10_000_000) == 664579


def run_primes_result(limit: int) -> int:
    from conveyor.worker.handlers import run_primes

    return int(run_primes(PrimesParams(limit=limit), 1)["count"])


def test_hash_matches_hashlib() -> None:
    expected = b"abc"
    for _ in range(5):
        expected = hashlib.sha256(expected).digest()
    assert run_hash(HashParams(data="abc", iterations=5), 1) == {"digest": expected.hex()}


def fail_outcomes(params: FailParams, attempts: int = 19) -> list[bool]:
    outcomes = []
    for attempt in range(1, attempts + 1):
        try:
            run_fail(params, attempt)
            outcomes.append(True)
        except TransientJobError:
            outcomes.append(False)
    return outcomes


def test_fail_is_deterministic_per_seed_and_attempt() -> None:
    params = FailParams(rate=0.5, seed=42)
    outcomes = fail_outcomes(params)
    assert outcomes == fail_outcomes(params)
    assert True in outcomes and False in outcomes


def test_every_kind_has_a_handler_and_sane_time_limits() -> None:
    from conveyor.worker import handlers

    resolved = handlers.resolve_handlers(KINDS.values())
    assert set(KINDS) == set(resolved) == {"sleep", "hash", "primes", "fail"}
    assert resolved["hash"] is handlers.run_hash
    soft, hard = KINDS["sleep"].time_limits({"ms": 60_000})
    assert 60 < soft < hard
    assert KINDS["sleep"].time_limits({"ms": 0}) == (25, 30)
    assert KINDS["hash"].time_limits({"iterations": 1}) == (295, 300)
