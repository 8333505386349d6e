"""Worker pools: each kind waits in its queue (cpu: hash, primes; io: sleep;
default: fail), and a worker serves only the queues in WORKER_QUEUES.

Real processes throughout: the Procfile's API, scheduler (its reconciler runs
every second here) and workers, on a fresh database and Redis db.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.faults import FAST_TIMINGS, jobs_by_id, status_counts, submit_all, wait_for_jobs
from tests.support.processes import Proc, Stack, wait_until

HASH = {"kind": "hash", "params": {"data": "x", "iterations": 2000}}
FAIL = {"kind": "fail", "params": {"rate": 0.0}}


def sleep(ms: int) -> dict[str, Any]:
    return {"kind": "sleep", "params": {"ms": ms}}


@pytest.fixture
def pools(engines: Engines, tmp_path: Path) -> Iterator[Stack]:
    stack = new_stack(engines, tmp_path, **FAST_TIMINGS)
    try:
        stack.start_api()
        stack.start_scheduler()
        yield stack
    finally:
        stack.stop()


def stats(stack: Stack, key: str) -> dict[str, Any]:
    with stack.client(key) as client:
        response = client.get("/v1/stats")
    assert response.status_code == 200, response.text
    return dict(response.json())


def metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in {"conveyor_queue_depth", "conveyor_pool_workers"}
    }


def ran_on(rows: dict[str, dict[str, Any]], worker: Proc) -> bool:
    prefix = f"worker-{worker.popen.pid}@"
    return all(str(row["worker_id"]).startswith(prefix) for row in rows.values())


def test_a_cpu_worker_runs_cpu_jobs_only_and_io_jobs_wait_for_an_io_worker(pools: Stack) -> None:
    key = pools.create_key("pools")
    cpu = pools.start_worker(concurrency=2, WORKER_QUEUES="cpu")
    io_ids = submit_all(pools.api_url, key, [sleep(50)] * 6)
    cpu_ids = submit_all(pools.api_url, key, [HASH] * 6)
    fail_id = submit_all(pools.api_url, key, [FAIL])

    cpu_rows, _ = wait_for_jobs(pools.database_url, cpu_ids, timeout=60, what="cpu jobs")
    assert {row["status"] for row in cpu_rows.values()} == {"succeeded"}
    assert ran_on(cpu_rows, cpu)
    # Several reconcile passes (1 s apart, "stale" after 3 s): the io jobs still
    # wait, once each, in their own queue; the reconciler adds no duplicates.
    time.sleep(5)
    waiting = jobs_by_id(pools.database_url, io_ids + fail_id)
    assert {row["status"] for row in waiting.values()} == {"queued"}
    seen = stats(pools, key)
    assert seen["queues"] == {
        "cpu": {"depth": 0, "workers": 1},
        "default": {"depth": 1, "workers": 0},
        "io": {"depth": 6, "workers": 0},
    }
    assert seen["pools"] == {"cpu": 1}
    assert (seen["queue_depth"], seen["workers_online"]) == (7, 1)
    scraped = metrics(pools)
    assert scraped[("conveyor_queue_depth", (("queue", "io"),))] == 6
    assert scraped[("conveyor_queue_depth", (("queue", "cpu"),))] == 0
    assert scraped[("conveyor_pool_workers", (("pool", "cpu"),))] == 1

    io = pools.start_worker(concurrency=2, WORKER_QUEUES="io,default")
    io_rows, _ = wait_for_jobs(pools.database_url, io_ids + fail_id, timeout=60, what="io jobs")
    assert {row["status"] for row in io_rows.values()} == {"succeeded"}
    assert ran_on(io_rows, io)
    assert {row["attempts"] for row in io_rows.values()} == {1}
    wait_until(
        lambda: stats(pools, key)["pools"] == {"cpu": 1, "default,io": 1}, 20, what="two pools"
    )


def test_fault_a_pool_scaled_to_zero_keeps_its_jobs_until_a_worker_comes_back(
    pools: Stack,
) -> None:
    key = pools.create_key("zero")
    io = pools.start_worker(concurrency=2, WORKER_QUEUES="io")
    pools.start_worker(concurrency=1, WORKER_QUEUES="cpu,default")
    first = submit_all(pools.api_url, key, [sleep(10)] * 4)
    wait_for_jobs(pools.database_url, first, timeout=60, what="io jobs before the scale-down")

    io.signal(signal.SIGTERM)  # the io pool goes to zero replicas
    assert io.popen.wait(30) == 0, io.output()[-3000:]
    waiting = submit_all(pools.api_url, key, [sleep(10)] * 8)
    others = submit_all(pools.api_url, key, [HASH, FAIL])
    wait_for_jobs(pools.database_url, others, timeout=60, what="the other pool's jobs")
    time.sleep(5)  # reconcile passes: nothing runs them, nothing duplicates them
    assert status_counts(pools.database_url)["queued"] == 8
    # The stopped worker's presence key may outlive it by its TTL (15 s).
    seen = wait_until(
        lambda: (s := stats(pools, key))["pools"] == {"cpu,default": 1} and s, 30, what="no io pool"
    )
    assert seen["queues"]["io"] == {"depth": 8, "workers": 0}

    back = pools.start_worker(concurrency=2, WORKER_QUEUES="io")
    rows, _ = wait_for_jobs(pools.database_url, waiting, timeout=60, what="io jobs after")
    assert {row["status"] for row in rows.values()} == {"succeeded"}
    assert {row["attempts"] for row in rows.values()} == {1}
    assert ran_on(rows, back)
