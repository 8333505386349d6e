"""Each kind runs to `succeeded` with exactly the result that docs/design.md
("Job kinds") gives, computed here independently."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import psycopg
import pytest

from conveyor.common.settings import Settings
from conveyor.common.tasks import make_celery_client, publish_run_job
from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import PROCFILE, Stack, wait_until


def sha256_rounds(data: str, iterations: int) -> str:
    h = data.encode()
    for _ in range(iterations):
        h = hashlib.sha256(h).digest()
    return h.hex()


def primes_up_to(limit: int) -> int:
    # Trial division: slow, obviously right, and nothing like the worker's sieve.
    return sum(1 for n in range(2, limit + 1) if all(n % d for d in range(2, int(n**0.5) + 1)))


@pytest.fixture(scope="module")
def client(stack: Stack):  # type: ignore[no-untyped-def]
    with stack.client(stack.create_key(f"kinds-{uuid.uuid4().hex[:6]}")) as c:
        yield c


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("sleep", {"ms": 120}, {"slept_ms": 120}),
        ("sleep", {"ms": 0}, {"slept_ms": 0}),
        (
            "hash",
            {"data": "conveyor", "iterations": 1000},
            {"digest": sha256_rounds("conveyor", 1000)},
        ),
        ("hash", {"iterations": 1}, {"digest": sha256_rounds("", 1)}),
        ("hash", {"data": "naïve ☃", "iterations": 7}, {"digest": sha256_rounds("naïve ☃", 7)}),
        ("primes", {"limit": 2}, {"count": 1}),
        ("primes", {"limit": 10_000}, {"count": primes_up_to(10_000)}),
        ("primes", {"limit": 7919}, {"count": primes_up_to(7919)}),
        ("fail", {"rate": 0, "seed": 1}, {"succeeded_on_attempt": 1}),
    ],
)
def test_kind_result_matches_independent_computation(client, kind, params, expected) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, kind, params)
    assert job["status"] == "queued"
    done = wait_terminal(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == expected
    assert done["attempts"] == 1
    assert done["worker_id"]


def test_fail_kind_retries_then_fails_with_error_recorded(client) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, "fail", {"rate": 1, "seed": 3}, max_attempts=3)
    done = wait_terminal(client, job["id"], timeout=60)
    assert done["status"] == "failed"
    assert done["attempts"] == 3
    assert "injected failure on attempt 3" in done["error"]
    assert done["result"] is None


def test_fail_kind_recovers_after_transient_failures(client) -> None:  # type: ignore[no-untyped-def]
    import random

    # Find a seed whose first attempt fails and second passes, the way the worker decides.
    seed = next(
        s
        for s in range(1000)
        if random.Random(f"{s}:1").random() < 0.5 <= random.Random(f"{s}:2").random()
    )
    job = submit(client, "fail", {"rate": 0.5, "seed": seed}, max_attempts=5)
    done = wait_terminal(client, job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["result"] == {"succeeded_on_attempt": 2}


def test_a_kind_added_by_one_registry_entry_runs_end_to_end(
    engines: Engines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API and a worker started with tests/support/echo_kind.py's entry (and
    no other change) accept, document and run the new kind."""
    for process in ("web", "worker"):
        monkeypatch.setitem(PROCFILE, process, f"python -m tests.support.echo_kind {process}")
    stack = new_stack(engines, tmp_path)
    try:
        stack.start_api()
        stack.start_worker(concurrency=1)
        with stack.client(stack.create_key(f"echo-{uuid.uuid4().hex[:6]}")) as client:
            spec = client.get("/openapi.json").json()
            assert "EchoJobCreate" in spec["components"]["schemas"]
            job = submit(client, "echo", {"text": "ab", "times": 3})
            done = wait_terminal(client, job["id"])
            assert done["status"] == "succeeded", done
            assert done["result"] == {"echo": "ababab", "attempt": 1}
            assert [j["id"] for j in client.get("/v1/jobs?kind=echo").json()["items"]] == [
                job["id"]
            ]
            refused = client.post("/v1/jobs", json={"kind": "echo", "params": {"text": 5}})
            assert refused.status_code == 422
            assert refused.json()["errors"][0]["field"] == "params.text"
    finally:
        stack.stop()


def test_a_job_of_a_kind_the_worker_does_not_know_fails_at_once(stack: Stack) -> None:
    """A job stored by an API whose registry has a kind this worker lacks (a
    rollout in the wrong order): publishing it still works, and the worker ends
    it `failed` with the reason, instead of holding it until its lease runs out."""
    job_id = uuid.uuid4()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), %s)",
            (f"retired-{job_id.hex[:6]}",),
        )
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts)"
            " SELECT %s, id, 'retired', '{}', 'queued', 0, 3 FROM tenants WHERE name = %s",
            (job_id, f"retired-{job_id.hex[:6]}"),
        )
    settings = Settings(database_url=stack.database_url, redis_url=stack.redis_url)  # type: ignore[arg-type]
    celery = make_celery_client(settings, "test")
    publish_run_job(celery, job_id, "retired", {})
    celery.close()

    def finished() -> tuple[str, int, str] | None:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT status, attempts, error FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
        return row if row and row[0] != "queued" and row[0] != "running" else None

    assert wait_until(finished, 30, what="the job to end") == (
        "failed",
        1,
        "LookupError: unknown job kind 'retired'",
    )
