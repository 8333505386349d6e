"""Job counts at scale: the counters triggers keep on write (migration 0006)
stay equal to count(*) through seeding, submits, runs, cancels and deletes,
and /v1/stats reports them."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import seed

from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack, wait_until


def _true_counts(url: str, tenant: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM jobs j JOIN tenants t ON t.id = j.tenant_id "
            "WHERE t.name = %s GROUP BY status",
            (tenant,),
        ).fetchall()
    return {status: int(n) for status, n in rows}


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in counts.items() if n}


def test_counts_match_count_star_through_seed_writes_and_deletes(stack: Stack) -> None:
    tenant = f"counts-{uuid.uuid4().hex[:6]}"
    key = stack.create_key(tenant)
    seed.seed(stack.database_url, tenant, 20_000, days=1)
    seeded = _true_counts(stack.database_url, tenant)
    assert sum(seeded.values()) == 20_000
    assert 150 <= seeded["failed"] <= 250  # about 1 %
    assert seeded["succeeded"] > 19_000

    with stack.client(key) as client:
        assert _nonzero(client.get("/v1/stats").json()["counts"]) == seeded
        # Concurrent batches and single submits, run to the end by the worker.
        body = {"jobs": [{"kind": "sleep", "params": {"ms": 0}}] * 50}
        with ThreadPoolExecutor(4) as pool:
            batches = list(pool.map(lambda _: client.post("/v1/jobs:batch", json=body), range(4)))
        assert all(r.status_code == 202 for r in batches)
        failing = submit(client, "fail", {"rate": 1}, max_attempts=1)
        assert wait_terminal(client, failing["id"])["status"] == "failed"
        # Deletes (as retention will do) count down too.
        with psycopg.connect(stack.database_url) as conn:
            conn.execute(
                "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j JOIN tenants t "
                "ON t.id = j.tenant_id WHERE t.name = %s AND j.status = 'failed' LIMIT 7)",
                (tenant,),
            )
        wait_until(
            lambda: not {"queued", "running"} & set(_true_counts(stack.database_url, tenant)),
            120,
            what="every job finished",
        )
        true = _true_counts(stack.database_url, tenant)
        assert sum(true.values()) == 20_000 + 201 - 7
        assert _nonzero(client.get("/v1/stats").json()["counts"]) == true
