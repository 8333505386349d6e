"""`e2e_latency`: submit until the client sees `succeeded`, for a `sleep 0` job,
at a fixed rate of half the measured capacity; against bare Celery's round
trip (`apply_async().get()`, Redis result backend, same worker settings).

Open loop: submits leave on a fixed schedule whatever the answers, so a slow
moment shows as latency rather than as a lower rate. Bare Celery's client is
one thread (its result consumer is not made for concurrent `get()`s), so its
next call waits when one round trip outlasts the interval: that favours it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import httpx
import psycopg

from bench.baseline_worker import JOBS_QUEUE, NOOP_TASK, create_app
from bench.harness import Bench, spawn, submit_batches, wait_until
from tests.support.processes import Stack

JOB: dict[str, Any] = {"kind": "sleep", "params": {"ms": 0}}
TERMINAL = {"succeeded", "failed", "cancelled"}
# `GET /v1/jobs/{id}?wait=N` answers as soon as the job is terminal: the
# client sees the result without polling (polling every 5 ms at half capacity
# saturated the API on 2 cores).
WAIT_S = 10


async def observe_finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job as the client first sees it in a terminal status."""
    while True:
        response = await client.get(f"/v1/jobs/{job_id}", params={"wait": WAIT_S})
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL:
            return job


async def _ours(url: str, key: str, rate: float, count: int) -> list[float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post("/v1/jobs", json=JOB)
            assert response.status_code == 202, response.text
            job = await observe_finished(client, response.json()["id"])
            assert job["status"] == "succeeded", job
            latencies.append((time.perf_counter() - started) * 1000)

        loop = asyncio.get_running_loop()
        begin, tasks = loop.time(), []
        for k in range(count):
            await asyncio.sleep(max(0.0, begin + k / rate - loop.time()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def _baseline(bench: Bench, rate: float, count: int) -> list[float]:
    stack = bench.stack()
    os.environ.update(
        DATABASE_URL=stack.database_url,
        REDIS_URL=stack.redis_url,
        BASELINE_RESULT_BACKEND=stack.redis_url,
    )
    worker = spawn(
        "baseline-worker",
        "python -m bench.baseline_worker",
        stack.env(WORKER_CONCURRENCY="2", BASELINE_RESULT_BACKEND=stack.redis_url),
        bench.workdir / "logs",
    )
    app = create_app()
    try:
        wait_until(lambda: "ready" in worker.output(), 30, what="baseline worker ready")
        for _ in range(20):  # warm-up
            app.send_task(NOOP_TASK, queue=JOBS_QUEUE).get(timeout=10)
        latencies, begin = [], time.perf_counter()
        for k in range(count):
            time.sleep(max(0.0, begin + k / rate - time.perf_counter()))
            started = time.perf_counter()
            app.send_task(NOOP_TASK, queue=JOBS_QUEUE).get(timeout=10)
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies
    finally:
        os.environ.pop("BASELINE_RESULT_BACKEND", None)
        app.close()
        worker.stop()


def _capacity(stack: Stack, key: str, total: int) -> float:
    """Jobs a second one worker (concurrency 2) drains; it keeps running."""
    with stack.client(key) as client:
        submit_batches(client, [JOB] * total)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        stack.start_worker(concurrency=2)
        ready = time.monotonic()
        query = "SELECT coalesce(sum(n), 0) FROM job_counts WHERE status = 'succeeded'"
        while conn.execute(query).fetchone()[0] < total:  # type: ignore[index]
            if time.monotonic() - ready > 300:
                raise AssertionError(f"{total} jobs not drained in 300 s")
            time.sleep(0.02)
        return total / (time.monotonic() - ready)


def _stages(url: str, count: int) -> dict[str, float]:
    """Medians of where the time went, from the jobs' own timestamps (each is
    its transaction's start): submit to claim, and claim to result."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - started_at)"
            " FROM (SELECT * FROM jobs ORDER BY created_at DESC LIMIT %s) AS recent",
            (count,),
        ).fetchone()
    assert row is not None
    return {
        "created_to_claimed_p50_ms": round(row[0].total_seconds() * 1000, 2),
        "claimed_to_finished_p50_ms": round(row[1].total_seconds() * 1000, 2),
    }


def _pct(values: list[float], p: int) -> float:
    return round(statistics.quantiles(values, n=100)[p - 1], 2)


def e2e_latency(bench: Bench) -> dict[str, float]:
    drain, seconds = (200, 3) if bench.smoke else (2000, 20)
    stack = bench.stack()
    try:
        key = stack.create_key("bench")
        stack.start_api()
        capacity = _capacity(stack, key, drain)
        rate = capacity / 2
        count = max(20, int(rate * seconds))
        asyncio.run(_ours(stack.api_url, key, rate, 20))  # warm-up
        ours = asyncio.run(_ours(stack.api_url, key, rate, count))
        stages = _stages(stack.database_url, count)
    finally:
        stack.stop()
    base = _baseline(bench, rate, count)
    return {
        "capacity_jobs_per_s": round(capacity, 1),
        "rate_per_s": round(rate, 1),
        "samples": count,
        "p50_ms": _pct(ours, 50),
        "p99_ms": _pct(ours, 99),
        "baseline_p50_ms": _pct(base, 50),
        "baseline_p99_ms": _pct(base, 99),
        "p50_vs_baseline": round(_pct(ours, 50) / _pct(base, 50), 2),
        **stages,
    }
