"""The queue age collector reports its last reading, aged on its own clock,
and nothing at all once that reading is too old to trust."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from conveyor.api.queue_age import STALE_AFTER_SECONDS, QueueAgeCollector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rendered(collector: QueueAgeCollector) -> list[str]:
    """The exposition's sample lines (HELP and TYPE left out)."""
    registry = CollectorRegistry()
    registry.register(collector)
    return [line for line in generate_latest(registry).decode().splitlines() if line[:1] != "#"]


def test_no_reading_yet_no_series() -> None:
    assert rendered(QueueAgeCollector(Clock())) == []


def test_a_reading_grows_between_reads_and_none_waiting_is_zero() -> None:
    clock = Clock()
    collector = QueueAgeCollector(clock)
    collector.record(12.0)
    clock.now += 3
    assert rendered(collector) == ["conveyor_queue_oldest_job_age_seconds 15.0"]
    collector.record(None)
    clock.now += 3
    assert rendered(collector) == ["conveyor_queue_oldest_job_age_seconds 0.0"]


def test_a_stale_reading_drops_the_series() -> None:
    clock = Clock()
    collector = QueueAgeCollector(clock)
    collector.record(12.0)
    clock.now += STALE_AFTER_SECONDS + 1
    assert rendered(collector) == []
