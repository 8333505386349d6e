"""`e2e_latency`: submit until the client sees `succeeded`, for a `sleep 0` job,
at a fixed rate of half the measured capacity; against bare Celery's round
trip (`apply_async().get()`, Redis result backend, same worker settings).

Capacity is that of the whole path, measured first in the same run: closed
loops of submit-then-wait, with the API, one worker (concurrency 2) and this
client sharing the machine, as they do in the measurement that follows.

Open loop: submits leave on a fixed schedule whatever the answers, so a slow
moment shows as latency rather than as a lower rate. Bare Celery's client is
one thread (its result consumer is not made for concurrent `get()`s), so its
next call waits when one round trip outlasts the interval: that favours it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

import gevent
import psycopg
from geventhttpclient import HTTPClient

from bench.baseline_worker import JOBS_QUEUE, NOOP_TASK, create_app
from bench.harness import Bench, spawn, wait_until
from bench.http_load import api_client, closed_loops

JOB: dict[str, Any] = {"kind": "sleep", "params": {"ms": 0}}
BODY = json.dumps(JOB)
CAPACITY_CLIENTS = 16
TERMINAL = {"succeeded", "failed", "cancelled"}
# `GET /v1/jobs/{id}?wait=N` answers as soon as the job is terminal: the
# client sees the result without polling (polling every 5 ms at half capacity
# saturated the API on 2 cores).
WAIT_S = 10


def submit_and_see(client: HTTPClient) -> None:
    """Submit one job and return once the client sees it `succeeded`."""
    response = client.post("/v1/jobs", body=BODY)
    body = response.read()
    assert response.status_code == 202, body
    job_id = json.loads(body)["id"]
    while True:
        response = client.get(f"/v1/jobs/{job_id}?wait={WAIT_S}")
        job = json.loads(response.read())
        assert response.status_code == 200, job
        if job["status"] in TERMINAL:
            assert job["status"] == "succeeded", job
            return


def _ours(client: HTTPClient, rate: float, count: int) -> list[float]:
    latencies: list[float] = []

    def one() -> None:
        started = time.perf_counter()
        submit_and_see(client)
        latencies.append((time.perf_counter() - started) * 1000)

    begin, greenlets = time.perf_counter(), []
    for k in range(count):
        gevent.sleep(max(0.0, begin + k / rate - time.perf_counter()))
        greenlets.append(gevent.spawn(one))
    gevent.joinall(greenlets, raise_error=True)
    return latencies


def _capacity(client: HTTPClient, clients: int, seconds: float) -> float:
    """Jobs a second the whole path sustains (submit, run, see the result)
    with `clients` closed loops: the API, the worker and this client share the
    machine, so a worker's drain rate alone overstates what the path carries."""
    done = 0

    def step() -> None:
        nonlocal done
        submit_and_see(client)
        done += 1

    started = time.perf_counter()
    gevent.joinall(closed_loops(clients, seconds, step), raise_error=True)
    return done / (time.perf_counter() - started)


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
    capacity_s, seconds = (2, 3) if bench.smoke else (8, 20)
    stack = bench.stack()
    try:
        key = stack.create_key("bench")
        stack.start_api()
        stack.start_worker(concurrency=2)
        client = api_client(stack.api_url, key, concurrency=128, timeout=WAIT_S + 20)
        try:
            _ours(client, 20, 20)  # warm-up: connections, prepared statements
            capacity = _capacity(client, CAPACITY_CLIENTS, capacity_s)
            rate = capacity / 2
            count = max(20, int(rate * seconds))
            ours = _ours(client, rate, count)
        finally:
            client.close()
        stages = _stages(stack.database_url, count)
    finally:
        stack.stop()
    base = _baseline(bench, rate, count)
    return {
        "capacity_jobs_per_s": round(capacity, 1),
        "capacity_clients": CAPACITY_CLIENTS,
        "rate_per_s": round(rate, 1),
        "samples": count,
        "p50_ms": _pct(ours, 50),
        "p99_ms": _pct(ours, 99),
        "baseline_p50_ms": _pct(base, 50),
        "baseline_p99_ms": _pct(base, 99),
        "p50_vs_baseline": round(_pct(ours, 50) / _pct(base, 50), 2),
        **stages,
    }
