"""`wait_fanout`: other routes' latency while 500 clients wait on `?wait=30`.

The API (one process, no worker, so the jobs stay queued) holds WAITERS
requests waiting on ten jobs; meanwhile one client times a loop of other
requests (read a job, list jobs, submit a job). The same loop runs first with
nobody waiting, for comparison. Then the ten jobs are cancelled and every
waiter must get `cancelled` back.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Bench, bench_engines, stop_on_signals, wait_until
from tests.support.waiters import wait_on_jobs, waiting_now

WAITERS = 500
WAIT_S = 30


def _timed_loop(client: httpx.Client, job_id: str, seconds: float) -> list[float]:
    """Latencies in ms of a sequential loop over three other routes."""
    requests = [
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", "/v1/jobs?limit=5", None),
        ("POST", "/v1/jobs", {"kind": "sleep", "params": {"ms": 0}}),
    ]
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        method, path, body = requests[len(latencies) % len(requests)]
        started = time.perf_counter()
        response = client.request(method, path, json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
    return latencies


def _p(latencies: list[float], q: int) -> float:
    return round(statistics.quantiles(latencies, n=100)[q - 1], 2)


def wait_fanout(bench: Bench) -> dict[str, Any]:
    seconds = 2 if bench.smoke else 10
    waiters = 50 if bench.smoke else WAITERS
    stack = bench.stack()
    key = stack.create_key("bench")
    stack.start_api()
    answers: list[tuple[int, str | None, float]] = []
    try:
        with stack.client(key) as client:
            jobs = [
                client.post("/v1/jobs", json={"kind": "sleep", "params": {"ms": 0}}).json()["id"]
                for _ in range(10)
            ]
            _timed_loop(client, jobs[0], 1)  # warm-up
            idle = _timed_loop(client, jobs[0], seconds)
            holder = threading.Thread(
                target=lambda: answers.extend(
                    asyncio.run(wait_on_jobs(stack.api_url, key, jobs, waiters, WAIT_S))
                )
            )
            holder.start()
            wait_until(lambda: waiting_now(stack.api_url) == waiters, 20, 0.2, "waiters in")
            loaded = _timed_loop(client, jobs[0], seconds)
            still_waiting = waiting_now(stack.api_url)
            cancelled_at = time.monotonic()
            for job_id in jobs:
                client.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()
            holder.join(WAIT_S + 30)
            answered_s = time.monotonic() - cancelled_at
    finally:
        stack.stop()
    if still_waiting != waiters or (sorted(set(answers)) and len(answers) != waiters):
        raise RuntimeError(f"waiters: {still_waiting} waiting, {len(answers)} answered")
    if {(code, status) for code, status, _ in answers} != {(200, "cancelled")}:
        raise RuntimeError(f"waiters got {sorted({(c, s) for c, s, _ in answers})}")
    return {
        "waiters": waiters,
        "requests": len(loaded),
        "p50_ms": _p(loaded, 50),
        "p99_ms": _p(loaded, 99),
        "idle_p50_ms": _p(idle, 50),
        "idle_p99_ms": _p(idle, 99),
        "all_answered_s": round(answered_s, 2),
    }


def main() -> None:
    """This section alone: `python -m bench.wait_bench [--smoke]` (prints, writes nothing)."""
    stop_on_signals()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    smoke = parser.parse_args().smoke
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        with bench_engines(workdir) as engines:
            print(wait_fanout(Bench(engines, workdir, smoke)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
