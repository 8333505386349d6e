"""Prometheus metrics for the API, and its access log.

- RED by route template: `http_requests_total`, `http_request_duration_seconds`.
- `conveyor_jobs_submitted_total` by kind.
- `conveyor_queue_depth`: the broker's backlog (Redis LLEN), read at scrape time.

`MetricsMiddleware` also writes the access log (uvicorn's own is off): one
`conveyor.api.access` event per request, inside the request's context, so it
carries `request_id`, `trace_id` and `span_id` like every other line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.common.logging import get_logger
from conveyor.common.tasks import JOBS_QUEUE

access_log = get_logger("conveyor.api.access")

# Probes and scrapes that succeed are logged at DEBUG: at INFO they would drown
# the lines people read. Failures stay at INFO.
_QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    jobs_submitted: Counter


class QueueDepthCollector(Collector):
    """`conveyor_queue_depth{queue}`: LLEN of the Celery queue's Redis list, per scrape.

    /metrics renders on a worker thread (health.py), so the blocking client is
    fine; a short timeout keeps a sick Redis from stalling the scrape. When Redis
    does not answer, the series is absent (and `/readyz` says why).
    """

    def __init__(self, broker_url: str, queues: Iterable[str] = (JOBS_QUEUE,)) -> None:
        self.broker_url = broker_url
        self.queues = tuple(queues)
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "conveyor_queue_depth",
            "Job messages waiting in the broker for a worker (Redis LLEN), by queue.",
            labels=["queue"],
        )

    def describe(self) -> Iterable[Metric]:
        # Registration calls describe(), not collect(): no Redis call at startup.
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        try:
            with self._lock:
                if self._client is None:
                    self._client = redis.Redis.from_url(
                        self.broker_url, socket_timeout=0.5, socket_connect_timeout=0.5
                    )
                client = self._client
            for queue in self.queues:
                family.add_metric([queue], float(client.llen(queue)))
        except (redis.RedisError, OSError):
            return []
        return [family]


def make_api_metrics(broker_url: str | None = None) -> ApiMetrics:
    # A registry per app, so tests can build many apps in one process.
    registry = CollectorRegistry()
    if broker_url:
        registry.register(QueueDepthCollector(broker_url))
    return ApiMetrics(
        registry=registry,
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
    )


def _route_template(app: ASGIApp, scope: Scope) -> str:
    # Templates, not raw paths, keep the label set small: /v1/jobs/{job_id}.
    # The router records the route it matched in the scope (Starlette >= 0.33);
    # FastAPI's included routers hide their routes from a scan of app.routes.
    matched = getattr(scope.get("route"), "path", None)
    if matched:
        return str(matched)
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics, router_app: ASGIApp) -> None:
        self.app = app
        self.metrics = metrics
        self.router_app = router_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(self.router_app, scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            _log_access(scope, method, route, status, elapsed)


def _log_access(scope: Scope, method: str, route: str, status: int, elapsed: float) -> None:
    path = scope.get("path", "")
    quiet = path in _QUIET_PATHS and status < 400
    log = access_log.debug if quiet else access_log.info
    client = scope.get("client")
    log(
        f"{method} {path} {status}",
        method=method,
        path=path,
        route=route,
        status=status,
        duration_ms=round(elapsed * 1000, 2),
        client=client[0] if client else None,
        http_version=scope.get("http_version"),
    )
