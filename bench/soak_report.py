"""The soak's measurements: a sampler (finished jobs, the jobs table's rows
and size, queue depth and each process's RSS, once a second), the figures
computed from its samples, and the chart."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

from conveyor.common.queues import all_queues, kind_routes, worker_lists

_LISTS = worker_lists(all_queues(kind_routes()))

WINDOW_S = 3  # throughput is finished jobs over the last WINDOW_S seconds
HOLD_S = 5  # "recovered": the rate over this long is back within 10 %
# Finished jobs, every row (the counters are kept on write, deletes included),
# and the table's size on disk with its indexes and TOAST.
_COUNTS = (
    "SELECT coalesce(sum(n) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')), 0),"
    " coalesce(sum(n), 0), pg_total_relation_size('jobs') FROM job_counts"
)


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (a Celery worker's pool, Postgres' backends)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return float("nan")
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return round(total / 2**20, 1)


class Sampler:
    def __init__(self, db_url: str, redis_url: str, pids: Callable[[], dict[str, int | None]]):
        self.db_url, self.redis_url, self.pids = db_url, redis_url, pids
        self.samples: list[dict[str, Any]] = []
        self.began = time.monotonic()
        self.began_wall = time.time()  # the same moment on the logs' clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _counts(self) -> dict[str, Any]:
        try:
            with psycopg.connect(self.db_url, connect_timeout=1, autocommit=True) as conn:
                finished, rows, size = conn.execute(_COUNTS).fetchone()  # type: ignore[misc]
        except psycopg.Error:  # Postgres is restarting
            return {"finished": None, "rows": None, "table_mb": None}
        return {"finished": int(finished), "rows": int(rows), "table_mb": round(size / 2**20, 2)}

    def _depth(self) -> int | None:
        try:
            with redis.Redis.from_url(self.redis_url, socket_timeout=1) as client:
                # Every queue's list: the soak's mix spans the cpu, io and default pools.
                return sum(int(client.llen(name)) for name in _LISTS)
        except redis.RedisError:
            return None

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, 1 - (time.monotonic() - self.began) % 1)):
            rss = {role: tree_rss_mb(pid) for role, pid in self.pids().items() if pid}
            self.samples.append(
                {
                    "t": round(time.monotonic() - self.began, 2),
                    **self._counts(),
                    "depth": self._depth(),
                    "rss_mb": rss,
                }
            )


def throughput(samples: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(t, jobs finished per second over the last WINDOW_S s), where both ends are known."""
    known = [(s["t"], s["finished"]) for s in samples if s["finished"] is not None]
    out = []
    for i, (t, n) in enumerate(known):
        back = [(t0, n0) for t0, n0 in known[:i] if t - t0 >= WINDOW_S]
        if back:
            t0, n0 = back[-1]
            out.append((t, (n - n0) / (t - t0)))
    return out


def _count_at(known: list[tuple[float, int]], t: float) -> tuple[float, int] | None:
    """The last known finished count at or before t."""
    before = [(t0, n) for t0, n in known if t0 <= t]
    return before[-1] if before else None


def recovery_s(samples: list[dict[str, Any]], fault_t: float, until: float) -> float | None:
    """Seconds from the fault until throughput is back within 10 % of its level
    in the 15 s before it: the first moment from which the next HOLD_S seconds
    finish at least 90 % of that rate. Rates over seconds, not per-second
    points: at tens of jobs a second a one-second count is noisier than 10 %.
    The level is the median of the WINDOW_S rates in those 15 s, so a backlog
    drained in a burst after the previous fault does not raise it. None if it
    is not back by `until` (the next fault, or the end)."""
    known = [(s["t"], s["finished"]) for s in samples if s["finished"] is not None]
    before = [rate for t, rate in throughput(samples) if fault_t - 15 + WINDOW_S <= t <= fault_t]
    if not before:
        return None
    level = statistics.median(before)
    for t, n in known:
        if t < fault_t or t + HOLD_S > until:
            continue
        later = _count_at(known, t + HOLD_S)
        if later and later[0] > t and (later[1] - n) / (later[0] - t) >= 0.9 * level:
            return round(t - fault_t, 1)
    return None


def rss_growth(samples: list[dict[str, Any]], duration: float) -> dict[str, float]:
    """Each process's RSS growth over the last three quarters of the run: the
    median of its samples just after the quarter mark against the final ones."""
    span = max(10.0, duration / 10)
    growth = {}
    roles = {role for s in samples for role in s["rss_mb"]}
    for role in sorted(roles):

        def median(lo: float, hi: float, role: str = role) -> float | None:
            values = [
                s["rss_mb"][role] for s in samples if lo <= s["t"] < hi and role in s["rss_mb"]
            ]
            return statistics.median(values) if values else None

        start, end = (
            median(duration / 4, duration / 4 + span),
            median(duration - span, duration + 1),
        )
        if start and end:
            growth[role] = round(end / start - 1, 3)
    return growth


def table_growth(samples: list[dict[str, Any]], duration: float) -> dict[str, float | None]:
    """The jobs table at the half-way mark and at the end (medians of the
    nearby samples): with retention it levels off, without it grows."""

    def median(key: str, lo: float, hi: float) -> float | None:
        values = [s[key] for s in samples if lo <= s["t"] < hi and s.get(key) is not None]
        return statistics.median(values) if values else None

    span = max(10.0, duration / 20)
    half = {k: median(k, duration / 2 - span, duration / 2) for k in ("rows", "table_mb")}
    end = {k: median(k, duration - span, duration + 1) for k in ("rows", "table_mb")}
    growth = (
        round(end["table_mb"] / half["table_mb"] - 1, 3)
        if end["table_mb"] and half["table_mb"]
        else None
    )
    return {
        "rows_half": half["rows"],
        "rows_end": end["rows"],
        "mb_half": half["table_mb"],
        "mb_end": end["table_mb"],
        "mb_growth_last_half": growth,
    }


def chart(samples: list[dict[str, Any]], faults: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_q, ax_m, ax_s) = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    series = throughput(samples)
    ax_t.plot([t for t, _ in series], [v for _, v in series], lw=1)
    ax_t.set_ylabel("jobs finished/s")
    depth = [(s["t"], s["depth"]) for s in samples if s["depth"] is not None]
    ax_q.plot([t for t, _ in depth], [d for _, d in depth], lw=1, color="tab:orange")
    ax_q.set_ylabel("queue depth")
    for role in sorted({r for s in samples for r in s["rss_mb"]}):
        points = [(s["t"], s["rss_mb"][role]) for s in samples if role in s["rss_mb"]]
        ax_m.plot([t for t, _ in points], [m for _, m in points], lw=1, label=role)
    ax_m.set_ylabel("RSS (MB)")
    ax_m.legend(fontsize=7, ncol=3)
    size = [(s["t"], s["table_mb"]) for s in samples if s.get("table_mb") is not None]
    ax_s.plot([t for t, _ in size], [mb for _, mb in size], lw=1, color="tab:green")
    ax_s.set_ylabel("jobs table (MB)")
    ax_s.set_xlabel("seconds")
    for fault in faults:
        for ax in (ax_t, ax_q, ax_m, ax_s):
            ax.axvline(fault["t"], color="red", lw=0.8, alpha=0.6)
        ax_t.annotate(fault["kind"], (fault["t"], 0), rotation=90, fontsize=7, va="bottom")
    fig.suptitle("make soak: throughput, queue depth, memory and table size; faults in red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
