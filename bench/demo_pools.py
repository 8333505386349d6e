"""The independence demo (`make demo-scaling`, scenario `pools`): CPU and IO load
together, then the `cpu` pool goes from 1 to 2 worker processes.

Two pools run side by side: `cpu` (WORKER_QUEUES=cpu, one process, concurrency 1)
and `io` (WORKER_QUEUES=io,default, one process, concurrency 8). A feeder keeps a
backlog of `hash` jobs in the cpu queue, and `sleep` jobs arrive at a fixed rate
(open loop, so their latency means something). After a warm-up, phase "before"
measures for a while; then a second cpu process starts and, after the same
warm-up, phase "after" measures as long. From Postgres: the cpu throughput
(`hash` jobs finished per second) and the p95 of the `sleep` jobs'
submit-to-finish time, of the jobs submitted in each window. The claim: the cpu
throughput roughly doubles, the io p95 stays within 20 % of its value before.
Writes pools.md and pools.png to the output directory.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import Bench, bench_engines, submit_batches
from tests.support.faults import query
from tests.support.processes import Stack

IO_CONCURRENCY = 8
IO_SLEEP_MS = 100
IO_PER_S = 10
CPU_BACKLOG = 20  # hash jobs kept waiting in the cpu queue


@dataclass
class Phase:
    name: str
    cpu_processes: int
    start: datetime
    end: datetime
    hash_per_s: float = 0.0
    sleep_jobs: int = 0
    sleep_p95_ms: float = 0.0
    t0: float = 0.0  # the window, in seconds since the demo started
    t1: float = 0.0


class Load(threading.Thread):
    """Sleep jobs at a fixed rate, and a cpu backlog that never runs dry."""

    def __init__(self, stack: Stack, key: str, iterations: int) -> None:
        super().__init__(daemon=True)
        self.client = stack.client(key)
        self.iterations = iterations
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            tick = 1 / IO_PER_S
            due = time.monotonic()
            next_feed = due
            while not self.stopping.is_set():
                response = self.client.post(
                    "/v1/jobs", json={"kind": "sleep", "params": {"ms": IO_SLEEP_MS}}
                )
                assert response.status_code == 202, response.text
                if time.monotonic() >= next_feed:
                    self.feed()
                    next_feed = time.monotonic() + 0.5
                due += tick
                self.stopping.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def feed(self) -> None:
        depth = self.client.get("/v1/stats").json()["queues"]["cpu"]["depth"]
        if depth < CPU_BACKLOG:
            job = {"kind": "hash", "params": {"data": "x", "iterations": self.iterations}}
            submit_batches(self.client, [job] * (CPU_BACKLOG * 2 - depth))

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        self.client.close()
        if self.error is not None:
            raise RuntimeError("the load generator failed") from self.error


def db_now(stack: Stack) -> datetime:
    return query(stack.database_url, "SELECT now() AS t")[0]["t"]  # type: ignore[no-any-return]


def measure(stack: Stack, phase: Phase) -> None:
    seconds = (phase.end - phase.start).total_seconds()
    [cpu] = query(
        stack.database_url,
        "SELECT count(*) AS n FROM jobs WHERE kind = 'hash' AND status = 'succeeded' "
        "AND finished_at >= %s AND finished_at < %s",
        phase.start,
        phase.end,
    )
    phase.hash_per_s = int(cpu["n"]) / seconds
    [io] = query(
        stack.database_url,
        "SELECT count(*) AS n, percentile_cont(0.95) WITHIN GROUP "
        "(ORDER BY extract(epoch FROM finished_at - created_at)) * 1000 AS p95 "
        "FROM jobs WHERE kind = 'sleep' AND created_at >= %s AND created_at < %s",
        phase.start,
        phase.end,
    )
    phase.sleep_jobs, phase.sleep_p95_ms = int(io["n"]), float(io["p95"] or 0)


def wait_sleep_jobs_done(stack: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [row] = query(
            stack.database_url,
            "SELECT count(*) AS n FROM jobs WHERE kind = 'sleep' AND finished_at IS NULL",
        )
        if int(row["n"]) == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"sleep jobs still unfinished after {timeout}s")


def timeline(stack: Stack, since: datetime) -> list[dict[str, Any]]:
    return query(
        stack.database_url,
        "SELECT kind, extract(epoch FROM created_at - %s) AS created, "
        "extract(epoch FROM finished_at - %s) AS finished FROM jobs "
        "WHERE status = 'succeeded' AND finished_at IS NOT NULL",
        since,
        since,
    )


def pools_demo(smoke: bool) -> tuple[list[Phase], list[dict[str, Any]], float]:
    """The two phases, every finished job's times (s since the start) and the scale time."""
    warmup, window = (4.0, 12.0) if smoke else (10.0, 60.0)
    iterations = 50_000 if smoke else 300_000
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-demo-pools-"))
    try:
        with bench_engines(workdir) as engines:
            stack = Bench(engines, workdir, smoke).stack()
            try:
                key = stack.create_key("demo-pools")
                stack.start_api()
                stack.start_scheduler()
                stack.start_worker(concurrency=IO_CONCURRENCY, WORKER_QUEUES="io,default")
                stack.start_worker(concurrency=1, WORKER_QUEUES="cpu")
                started = db_now(stack)
                load = Load(stack, key, iterations)
                load.start()
                phases = []
                for processes in (1, 2):
                    if processes == 2:
                        print("scaling the cpu pool to 2 worker processes", flush=True)
                        stack.start_worker(concurrency=1, WORKER_QUEUES="cpu")
                        scaled_at = (db_now(stack) - started).total_seconds()
                    time.sleep(warmup)
                    begin = db_now(stack)
                    time.sleep(window)
                    name = "before" if processes == 1 else "after"
                    phase = Phase(name, processes, begin, db_now(stack))
                    phase.t0 = (phase.start - started).total_seconds()
                    phase.t1 = (phase.end - started).total_seconds()
                    phases.append(phase)
                    print(f"phase {name} measured", flush=True)
                load.stop()
                wait_sleep_jobs_done(stack)
                for phase in phases:
                    measure(stack, phase)
                return phases, timeline(stack, started), scaled_at
            finally:
                stack.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_pools_outputs(
    phases: list[Phase], jobs: list[dict[str, Any]], scaled_at: float, out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    before, after = phases
    cpu_ratio = after.hash_per_s / before.hash_per_s if before.hash_per_s else 0.0
    p95_change = after.sleep_p95_ms / before.sleep_p95_ms - 1 if before.sleep_p95_ms else 0.0
    lines = [
        "| phase | cpu pool processes | hash jobs/s | sleep jobs | sleep p95 submit-to-finish |",
        "|---|---|---|---|---|",
        *(
            f"| {p.name} | {p.cpu_processes} | {p.hash_per_s:.2f} | {p.sleep_jobs} | "
            f"{p.sleep_p95_ms:.0f} ms |"
            for p in phases
        ),
        "",
        f"- CPU throughput after / before: **{cpu_ratio:.2f}x** (claim: roughly 2x)",
        f"- IO p95 change: **{p95_change:+.1%}** (claim: within ±20 %: "
        f"{'met' if abs(p95_change) <= 0.2 else 'not met'})",
    ]
    (out / "pools.md").write_text("\n".join(lines) + "\n")

    bucket = 5.0
    # Whole buckets up to the end of the last window (the load stopped there).
    edges = [i * bucket for i in range(int(after.t1 // bucket))]
    hashes = [float(j["finished"]) for j in jobs if j["kind"] == "hash"]
    sleeps = [(float(j["created"]), float(j["finished"])) for j in jobs if j["kind"] == "sleep"]
    rate = [sum(t <= f < t + bucket for f in hashes) / bucket for t in edges]
    p95 = []
    for t in edges:
        waits = sorted((f - c) * 1000 for c, f in sleeps if t <= c < t + bucket)
        p95.append(waits[int(0.95 * (len(waits) - 1))] if waits else float("nan"))
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    axes[0].step(edges, rate, where="post", color="tab:red")
    axes[0].set(title="cpu pool: hash jobs finished per second", ylabel="jobs/s")
    axes[1].step(edges, p95, where="post", color="tab:blue")
    axes[1].set(title="io pool: sleep jobs, p95 submit-to-finish", ylabel="ms", xlabel="s")
    for ax in axes:
        ax.axvline(scaled_at, color="grey", linestyle="--", label="cpu pool 1 -> 2 processes")
        for phase in phases:  # the measured windows
            ax.axvspan(phase.t0, phase.t1, alpha=0.08, color="green")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pools.png", dpi=100)
    print("\n".join(lines))
    print(f"\nwrote {out / 'pools.png'} and {out / 'pools.md'}")
