"""`data_scale`: the same measurements on an empty jobs table and on one with
millions of finished jobs (scripts/seed.py), in the same run.

Submit and worker throughput are interleaved between the two stacks (see
`interleave`), so a noisy neighbour slows both alike; the reads are timed one
request at a time, as a dashboard or a client paging through sees them.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time
from typing import Any

import httpx
import psycopg
import redis

from bench.harness import ROOT, Bench, interleave, submit_batches, wrk
from conveyor.api.jobs.cursor import encode_cursor
from tests.support.processes import Stack

sys.path.insert(0, str(ROOT / "scripts"))
import seed

TENANT = "bench"
PAGE = 20  # the API's default page size
DEPTH_PAGES = 1000


def seed_jobs(bench: Bench) -> int:
    return 20_000 if bench.smoke else int(os.environ.get("BENCH_SEED_JOBS", "5000000"))


def _succeeded(conn: psycopg.Connection) -> int:
    # The counters, not count(*): a poll must not scan millions of rows.
    row = conn.execute("SELECT coalesce(sum(n), 0) FROM job_counts WHERE status = 'succeeded'")
    return int(row.fetchone()[0])  # type: ignore[index]


def _drain_rate(stack: Stack, key: str, total: int) -> float:
    """Queue `total` sleep-0 jobs, start a worker, time it draining them."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        goal = _succeeded(conn) + total
        with stack.client(key) as client:
            submit_batches(client, [{"kind": "sleep", "params": {"ms": 0}}] * total)
        worker = stack.start_worker(concurrency=2)
        ready = time.monotonic()
        try:
            while _succeeded(conn) < goal:
                if time.monotonic() - ready > 600:
                    raise AssertionError(f"{total} jobs not drained in 600 s")
                time.sleep(0.02)
            return total / (time.monotonic() - ready)
        finally:
            worker.stop()
            stack.procs.remove(worker)


def _discard_queued(stack: Stack) -> None:
    """The jobs wrk submitted and no worker ran: off the queue and out of the way."""
    with redis.Redis.from_url(stack.redis_url) as client:
        client.flushdb()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now() "
            "WHERE status = 'queued'"
        )


def _latency(
    client: httpx.Client, name: str, path: str, params: dict[str, Any], count: int
) -> dict[str, float]:
    """p99 (the target) and p50: on a shared machine the p50 shows the request's
    own cost when a neighbour's burst inflates the tail of both tables alike."""
    for _ in range(5):  # warm-up: connections, prepared statements
        client.get(path, params=params).raise_for_status()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return {f"{name}_p99_ms": round(cuts[98], 2), f"{name}_p50_ms": round(cuts[49], 2)}


def _deep_cursor(url: str, pages: int) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT j.created_at, j.id FROM jobs j JOIN tenants t ON t.id = j.tenant_id "
            "WHERE t.name = %s ORDER BY j.created_at DESC, j.id DESC OFFSET %s LIMIT 1",
            (TENANT, pages * PAGE - 1),
        ).fetchone()
    assert row is not None, "not enough jobs for the deep page"
    return encode_cursor(row[0], row[1])


def _reads(stack: Stack, key: str, count: int, pages: int) -> dict[str, float]:
    cursor = _deep_cursor(stack.database_url, pages) if pages else None
    with stack.client(key) as client:
        return {
            **_latency(client, "stats", "/v1/stats", {}, count),
            **_latency(client, "list_first", "/v1/jobs", {}, count),
            **_latency(client, "list_failed", "/v1/jobs", {"status": "failed"}, count),
            **(
                _latency(client, "list_deep", "/v1/jobs", {"cursor": cursor}, count)
                if cursor
                else {}
            ),
        }


def _sizes_per_million(url: str, jobs: int) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        table, indexes = conn.execute(
            "SELECT pg_table_size('jobs'), pg_indexes_size('jobs')"
        ).fetchone()  # type: ignore[misc]
    per_million = 1e6 / jobs / 2**20
    return {
        "table_mb_per_million": round(table * per_million, 1),
        "indexes_mb_per_million": round(indexes * per_million, 1),
    }


def data_scale(bench: Bench) -> dict[str, float]:
    jobs = seed_jobs(bench)
    rounds, seconds, drain, reads = (1, 3, 300, 50) if bench.smoke else (3, 5, 3000, 500)
    empty, seeded = bench.stack(), bench.stack()
    try:
        keys = {"empty": empty.create_key(TENANT), "seeded": seeded.create_key(TENANT)}
        print(f"bench: data_scale seeding {jobs} jobs ...", flush=True)
        seed_s = seed.seed(seeded.database_url, TENANT, jobs)
        sizes = _sizes_per_million(seeded.database_url, jobs)
        stacks = {"empty": empty, "seeded": seeded}
        for stack in stacks.values():
            stack.start_api()
        pages = min(DEPTH_PAGES, jobs // PAGE - 1)
        read = {"seeded": _reads(seeded, keys["seeded"], reads, pages)}
        read["empty"] = _reads(empty, keys["empty"], reads, 0)
        for name, stack in stacks.items():
            wrk(f"{stack.api_url}/v1/jobs", 2, 32, keys[name])  # warm-up
        submits = interleave(
            {
                name: functools.partial(wrk, f"{stack.api_url}/v1/jobs", seconds, 32, keys[name])
                for name, stack in stacks.items()
            },
            rounds,
            score=lambda run: run["seeded"]["req_per_s"] / run["empty"]["req_per_s"],
        )
        for stack in stacks.values():
            _discard_queued(stack)
        drains = interleave(
            {
                name: functools.partial(_drain_rate, s, keys[name], drain)
                for name, s in stacks.items()
            },
            rounds,
            score=lambda run: run["seeded"] / run["empty"],
        )
    finally:
        empty.stop()
        seeded.stop()
    submit = {name: run["req_per_s"] for name, run in submits.items()}
    return {
        "seeded_jobs": jobs,
        "seed_s": round(seed_s, 1),
        "submit_jobs_per_s_empty": round(submit["empty"], 1),
        "submit_jobs_per_s": round(submit["seeded"], 1),
        "submit_ratio": round(submit["seeded"] / submit["empty"], 3),
        "worker_jobs_per_s_empty": round(drains["empty"], 1),
        "worker_jobs_per_s": round(drains["seeded"], 1),
        "worker_ratio": round(drains["seeded"] / drains["empty"], 3),
        **read["seeded"],
        **{f"{name}_empty": value for name, value in read["empty"].items()},
        "list_deep_pages": pages,
        **sizes,
    }
