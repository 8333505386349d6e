"""Prometheus metrics for the API, and its access log.

- RED by route template: `http_requests_total`, `http_request_duration_seconds`.
- `conveyor_jobs_submitted_total` by kind.
- `conveyor_queue_depth{queue}`: each queue's backlog (Redis LLEN), and
  `conveyor_pool_workers{pool}`: each worker pool's processes online (their
  presence keys), both read at scrape time (pools.py).
- `conveyor_queue_oldest_job_age_seconds`: the oldest runnable queued job's wait,
  read from Postgres by a lifespan task (queue_age.py).
- `conveyor_api_job_waiters`: requests in `GET /v1/jobs/{id}?wait=` asleep now.

middleware.EdgeMiddleware records the HTTP series and writes the access log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.api.pools import read_sync
from conveyor.api.queue_age import QueueAgeCollector


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    jobs_submitted: Counter
    queue_age: QueueAgeCollector  # fed by queue_age.refresh_queue_age in the lifespan
    job_waiters: Gauge


class QueueDepthCollector(Collector):
    """`conveyor_queue_depth{queue}`: LLEN of each queue's Redis list, and
    `conveyor_pool_workers{pool}`: the worker processes online per pool, per scrape.

    /metrics renders on a worker thread (health.py), so the blocking client is
    fine; a short timeout keeps a sick Redis from stalling the scrape. When Redis
    does not answer, the series is absent (and `/readyz` says why).
    """

    def __init__(self, broker_url: str, queues: Iterable[str]) -> None:
        self.broker_url = broker_url
        self.queues = tuple(queues)
        self.client: redis.Redis | None = None
        self.lock = threading.Lock()

    def families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return GaugeMetricFamily(
            "conveyor_queue_depth",
            "Job messages waiting in the broker for a worker (Redis LLEN), by queue.",
            labels=["queue"],
        ), GaugeMetricFamily(
            "conveyor_pool_workers",
            "Worker processes online (fresh heartbeat), by pool: the queues they serve.",
            labels=["pool"],
        )

    def describe(self) -> Iterable[Metric]:
        # Registration calls describe(), not collect(): no Redis call at startup.
        return list(self.families())

    def collect(self) -> Iterable[Metric]:
        depth, workers = self.families()
        try:
            with self.lock:
                if self.client is None:
                    self.client = redis.Redis.from_url(
                        self.broker_url, socket_timeout=0.5, socket_connect_timeout=0.5
                    )
                client = self.client
            view = read_sync(client, self.queues)
        except (redis.RedisError, OSError):
            return []
        for queue, count in view.depths.items():
            depth.add_metric([queue], float(count))
        for pool, count in view.pools.items():
            workers.add_metric([pool], float(count))
        return [depth, workers]


def make_api_metrics(broker_url: str | None = None, queues: Iterable[str] = ()) -> ApiMetrics:
    # A registry per app, so tests can build many apps in one process.
    registry = CollectorRegistry()
    if broker_url:
        registry.register(QueueDepthCollector(broker_url, queues))
    queue_age = QueueAgeCollector()
    registry.register(queue_age)
    return ApiMetrics(
        registry=registry,
        queue_age=queue_age,
        requests=Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        jobs_submitted=Counter(
            "conveyor_jobs_submitted_total",
            "Jobs accepted by the API, by kind.",
            ["kind"],
            registry=registry,
        ),
        job_waiters=Gauge(
            "conveyor_api_job_waiters",
            "Requests asleep until a job finishes (GET /v1/jobs/{id}?wait=).",
            registry=registry,
        ),
    )
