"""The soak's fault schedule and its recovery and growth figures, on
synthetic samples: what decides whether CI's 2-minute soak passes."""

from __future__ import annotations

from typing import Any

from bench.soak import schedule
from bench.soak_cluster import FAULT_KINDS
from bench.soak_report import recovery_s, rss_growth, table_growth


def test_a_two_minute_soak_injects_every_fault_kind_once() -> None:
    faults = schedule(120, seed=1)
    assert sorted(f["kind"] for f in faults) == sorted(FAULT_KINDS)
    assert [f["t"] for f in faults] == [20, 40, 60, 80, 100]  # 20 s to recover after the last


def test_a_long_soak_injects_one_fault_a_minute_in_rotation() -> None:
    faults = schedule(20 * 60, seed=1)
    assert [f["t"] for f in faults] == [60.0 * n for n in range(1, 20)]
    assert [f["kind"] for f in faults[:10]] == [*FAULT_KINDS, *FAULT_KINDS]


def test_the_schedule_is_fixed_by_its_seed() -> None:
    assert schedule(1200, seed=7) == schedule(1200, seed=7)
    assert schedule(1200, seed=7) != schedule(1200, seed=8)  # which worker each time


def _samples(rate_at: Any, seconds: int) -> list[dict[str, Any]]:
    """One a second; `rate_at(t)` jobs finish during [t, t + 1)."""
    finished, out = 0.0, []
    for t in range(seconds):
        out.append({"t": float(t), "finished": int(finished), "depth": 0, "rss_mb": {}})
        finished += rate_at(t)
    return out


def test_recovery_is_when_the_rate_is_back_within_ten_percent() -> None:
    # 20 jobs/s, nothing from 30 s to 38 s, then 20 again.
    samples = _samples(lambda t: 0 if 30 <= t < 38 else 20, 80)
    assert recovery_s(samples, 30, 80) == 8
    # Never back: 15 jobs/s after the fault is 75 % of the level.
    assert recovery_s(_samples(lambda t: 15 if t >= 30 else 20, 80), 30, 80) is None


def test_rss_growth_compares_the_quarter_mark_with_the_end() -> None:
    samples = [
        {"t": float(t), "finished": 0, "depth": 0, "rss_mb": {"api": 100 + t / 10}}
        for t in range(400)
    ]
    growth = rss_growth(samples, 400)
    assert round(growth["api"], 2) == 0.23  # medians: 112 MB at 100-140 s, 138 MB at 360-400 s


def test_table_growth_compares_the_half_way_mark_with_the_end() -> None:
    # Retention on: the table fills for 5 minutes, then holds at 40 MB.
    levelling = [
        {"t": float(t), "rows": min(t, 300) * 50, "table_mb": min(t, 300) / 7.5}
        for t in range(1200)
    ]
    held = table_growth(levelling, 1200)
    assert held["mb_half"] == held["mb_end"] == 40 and held["mb_growth_last_half"] == 0
    # Retention off: it keeps growing; the figure says by how much (57 -> 117 MB).
    growing = [{"t": float(t), "rows": t * 50, "table_mb": t / 10} for t in range(1200)]
    assert table_growth(growing, 1200)["mb_growth_last_half"] == 1.054


def test_a_backlog_drained_before_a_fault_does_not_raise_the_level() -> None:
    # 20 jobs/s, but at 23 s the previous fault's backlog of 60 jobs finished at once.
    samples = _samples(lambda t: 20 + (60 if t == 23 else 0) if t < 30 else 20, 80)
    assert recovery_s(samples, 30, 80) == 0
