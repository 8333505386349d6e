"""Worker measurements: end-to-end jobs against a bare Celery no-op task, and
how throughput scales with worker processes for CPU- and IO-bound kinds."""

from __future__ import annotations

import os
import time

import psycopg
import redis

from bench.baseline_worker import NOOP_TASK, SLEEP_TASK, create_app
from bench.harness import Bench, interleave, spawn, submit_batches, wait_until
from conveyor.common.queues import DEFAULT_QUEUE, list_name

JOBS_QUEUE = list_name(DEFAULT_QUEUE)  # where the no-op tasks wait

POLL_S = 0.02


def _wait_succeeded(database_url: str, total: int, timeout: float) -> float:
    """Polls until `total` jobs succeeded; returns the monotonic time it saw it.

    On one connection, as the baseline polls Redis on one: a new connection per
    poll (50 a second) had Postgres start a backend each time, CPU that the
    worker under test was short of on 2 cores (about a fifth of its throughput).
    """
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()
            if row and row[0] >= total:
                return time.monotonic()
            time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout}s waiting for {total} jobs to succeed")


def _jobs_per_s(bench: Bench, jobs: list[dict[str, object]], concurrency: int) -> float:
    """Enqueue everything first, then time one worker draining it."""
    stack = bench.stack()
    try:
        key = stack.create_key("bench")
        stack.start_api()
        with stack.client(key) as client:
            submit_batches(client, jobs)
        stack.start_worker(concurrency=concurrency)
        ready = time.monotonic()
        finished = _wait_succeeded(stack.database_url, len(jobs), timeout=600)
    finally:
        stack.stop()  # the API and the worker, also when a step failed
    return len(jobs) / (finished - ready)


def _baseline_tasks_per_s(
    bench: Bench,
    total: int,
    concurrency: int = 2,
    task: str = NOOP_TASK,
    args: tuple[int, ...] = (),
) -> float:
    """The same drain for bare Celery: same settings, same broker."""
    stack = bench.stack()
    broker = redis.Redis.from_url(stack.redis_url)
    os.environ.update(DATABASE_URL=stack.database_url, REDIS_URL=stack.redis_url)
    client = create_app()
    with client.producer_or_acquire() as producer:
        for _ in range(total):
            client.send_task(task, args=args, queue=JOBS_QUEUE, producer=producer)
    client.close()
    worker = spawn(
        "baseline-worker",
        "python -m bench.baseline_worker",
        stack.env(WORKER_CONCURRENCY=str(concurrency)),
        bench.workdir / "logs",
    )
    try:
        wait_until(lambda: "ready" in worker.output(), 30, what="baseline worker ready")
        ready = time.monotonic()
        wait_until(
            lambda: broker.llen(JOBS_QUEUE) == 0 and broker.hlen("unacked") == 0,
            600,
            interval=POLL_S,
            what="baseline tasks drained",
        )
        return total / (time.monotonic() - ready)
    finally:
        worker.stop()


def _rounds(bench: Bench) -> int:
    return 1 if bench.smoke else 3


def worker_e2e(bench: Bench) -> dict[str, float]:
    total = 300 if bench.smoke else 3000
    jobs: list[dict[str, object]] = [{"kind": "sleep", "params": {"ms": 0}}] * total
    rates = interleave(
        {
            "ours": lambda: _jobs_per_s(bench, jobs, 2),
            "baseline": lambda: _baseline_tasks_per_s(bench, total),
        },
        _rounds(bench),
        score=lambda run: run["ours"] / run["baseline"],
    )
    return {
        "jobs_per_s": round(rates["ours"], 1),
        "baseline_tasks_per_s": round(rates["baseline"], 1),
        "ratio": round(rates["ours"] / rates["baseline"], 3),
    }


def scaling_cpu(bench: Bench) -> dict[str, float]:
    iterations = 50_000 if bench.smoke else 300_000
    count = 8 if bench.smoke else 40
    jobs: list[dict[str, object]] = [
        {"kind": "hash", "params": {"data": f"j{n}", "iterations": iterations}}
        for n in range(count)
    ]
    rates = interleave(
        {"one": lambda: _jobs_per_s(bench, jobs, 1), "two": lambda: _jobs_per_s(bench, jobs, 2)},
        _rounds(bench),
        score=lambda run: run["two"] / run["one"],
    )
    return {
        "jobs_per_s_1": round(rates["one"], 2),
        "jobs_per_s_2": round(rates["two"], 2),
        "speedup_2_vs_1": round(rates["two"] / rates["one"], 3),
    }


def scaling_io(bench: Bench) -> dict[str, float]:
    """Concurrency 32 against 1 for 100 ms sleeps, and, for information, the
    same for bare Celery tasks that sleep (no target: what Celery's prefork
    pool itself reaches on this machine this hour)."""
    # 2 s of sleeping per process at each concurrency: long enough that the
    # first and last rounds (children picking up their first message, the
    # tail) do not dominate, short enough for the 10-minute budget.
    per_process = 3 if bench.smoke else 20
    job: dict[str, object] = {"kind": "sleep", "params": {"ms": 100}}
    rates = interleave(
        {
            "one": lambda: _jobs_per_s(bench, [job] * per_process, 1),
            "many": lambda: _jobs_per_s(bench, [job] * (32 * per_process), 32),
            "bare_one": lambda: _baseline_tasks_per_s(bench, per_process, 1, SLEEP_TASK, (100,)),
            "bare_many": lambda: _baseline_tasks_per_s(
                bench, 32 * per_process, 32, SLEEP_TASK, (100,)
            ),
        },
        _rounds(bench),
        score=lambda run: run["many"] / run["one"],
    )
    return {
        "jobs_per_s_1": round(rates["one"], 2),
        "jobs_per_s_32": round(rates["many"], 2),
        "efficiency_32": round(rates["many"] / (32 * rates["one"]), 3),
        "baseline_efficiency_32": round(rates["bare_many"] / (32 * rates["bare_one"]), 3),
    }
