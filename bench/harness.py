"""Shared pieces of `make bench`: engines, stacks, timing and machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import redis

from tests.support.engines import Engines, embedded_engines, stop_on_signals
from tests.support.processes import Stack, spawn, wait_until

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@dataclass
class Bench:
    engines: Engines
    workdir: Path
    smoke: bool
    _redis_db: int = 0

    def stack(self, **env: str) -> Stack:
        """A fresh database and Redis db, migrated, with nothing running yet."""
        # Redis has 16 numbered databases; reuse 1-15 in turn, emptied first.
        self._redis_db = self._redis_db % 15 + 1
        redis_url = self.engines.redis(self._redis_db)
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
        stack = Stack(
            database_url=self.engines.database(f"bench_{uuid.uuid4().hex[:8]}"),
            redis_url=redis_url,
            log_dir=self.workdir / "logs",
            # Throwaway stacks: a running job's 1 s grace, so Ctrl-C stops a bench
            # or a demo in seconds (a worker with jobs in hand waits out its grace).
            extra_env={"LOG_LEVEL": "INFO", "WORKER_SHUTDOWN_GRACE_SECONDS": "1", **env},
        )
        stack.migrate()
        return stack

    def settle(self) -> None:
        """Before each section: drop the earlier sections' databases and write
        their dirty pages out, so the checkpoint and autovacuum that one
        section's inserts owe do not land in the next one's measurement."""
        with psycopg.connect(self.engines.database_url, autocommit=True) as conn:
            names = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'"
            ).fetchall()
            for (name,) in names:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute("CHECKPOINT")


@contextlib.contextmanager
def bench_engines(workdir: Path) -> Iterator[Engines]:
    # Durable settings, like `make up`: commits really reach the disk.
    with embedded_engines(workdir, durable=os.environ.get("BENCH_DURABLE", "1") == "1") as (pg, rd):
        yield Engines("embedded", pg.url, rd.url.rsplit("/", 1)[0])


def interleave(
    measures: dict[str, Callable[[], T]], rounds: int, score: Callable[[dict[str, T]], float]
) -> dict[str, T]:
    """Runs each measurement in turn, `rounds` times, and returns the round
    whose score (a ratio between the measurements) is the median.

    On this shared machine a noisy neighbour can halve a rate for seconds; the
    measurements of one round ran back to back, so it slows them alike and
    their ratio holds, where a ratio of medians from different rounds would not.
    Every other round runs them in reverse order (A B, B A, A B, ...), so
    whatever the first leaves behind (a checkpoint, an autovacuum) does not
    always land on the same side.
    """
    runs = []
    for round_ in range(rounds):
        order = list(measures.items())
        if round_ % 2:
            order.reverse()
        runs.append({name: measure() for name, measure in order})
    return sorted(runs, key=score)[len(runs) // 2]


def submit_batches(client: httpx.Client, jobs: list[dict[str, object]]) -> None:
    for start in range(0, len(jobs), 1000):
        response = client.post("/v1/jobs:batch", json={"jobs": jobs[start : start + 1000]})
        assert response.status_code == 202, response.text


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def machine() -> dict[str, object]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def wrk(url: str, seconds: int, connections: int, key: str | None) -> dict[str, float]:
    """Runs wrk with 2 threads and keep-alive connections; returns req/s and latency in ms."""
    env = {**os.environ, "BENCH_API_KEY": key or ""}
    done = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "wrk_submit.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = done.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"req_per_s": rate, "p50_ms": pct("50"), "p99_ms": pct("99")}


__all__ = ["Bench", "spawn", "stop_on_signals", "wait_until"]
