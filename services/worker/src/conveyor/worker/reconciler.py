"""One reconciliation pass: requeue lost work and re-publish lost messages.

Each pass counts the expired leases it handled in `reconciler_metrics()`, which
the scheduler serves on METRICS_PORT.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import redis
from celery import Celery
from sqlalchemy import Engine

from conveyor.common.logging import get_logger
from conveyor.common.queues import all_queues, worker_lists
from conveyor.common.run_job_message import app_routes
from conveyor.common.tasks import publish_run_job
from conveyor.worker import repository
from conveyor.worker.repository import JobRef

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

log = get_logger("conveyor.reconciler")


@dataclass(frozen=True)
class ReconcilerMetrics:
    registry: CollectorRegistry
    leases_requeued: Counter
    leases_failed: Counter


@cache
def reconciler_metrics() -> ReconcilerMetrics:
    """Built on first use, not at import: the scheduler first chooses
    prometheus_client's single-process mode (metrics_server.use_single_process_mode)."""
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    return ReconcilerMetrics(
        registry=registry,
        leases_requeued=Counter(
            "conveyor_reconciler_leases_requeued_total",
            "Running jobs whose lease expired (worker lost) and that the reconciler queued again.",
            registry=registry,
        ),
        leases_failed=Counter(
            "conveyor_reconciler_leases_failed_total",
            "Running jobs whose lease expired with no attempt left, failed by the reconciler.",
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class PassResult:
    lease_requeued: int
    lease_failed: int
    republished: int


def _publish_all(celery: Celery, jobs: list[JobRef]) -> int:
    sent = 0
    for job in jobs:
        try:
            publish_run_job(celery, job.id, job.kind, job.params)
            sent += 1
        except Exception as exc:  # broker down: they stay queued; next pass retries
            log.warning("re-publish failed", job_id=str(job.id), error=str(exc))
            break
    return sent


def reconcile_once(
    engine: Engine, celery: Celery, broker: redis.Redis, *, queued_after_s: float
) -> PassResult:
    requeued, failed = repository.requeue_expired_leases(engine)
    # Counted once committed, before anything below can raise.
    metrics = reconciler_metrics()
    metrics.leases_requeued.inc(len(requeued))
    metrics.leases_failed.inc(failed)
    sent = _publish_all(celery, requeued)
    # Re-publish only as many stale jobs as the broker seems to be missing, so a
    # long but healthy backlog is not flooded with duplicates.
    try:
        lists = worker_lists(all_queues(app_routes(celery)))  # every queue's list
        depth = sum(int(broker.llen(name)) for name in lists)
    except redis.RedisError:
        depth = None
    if depth is not None:
        missing = repository.count_queued(engine) - depth
        if missing > 0:
            stale = repository.touch_stale_queued(engine, queued_after_s, limit=min(missing, 1000))
            sent += _publish_all(celery, stale)
    result = PassResult(len(requeued), failed, sent)
    if result.lease_requeued or result.lease_failed or result.republished:
        log.info(
            "reconciled",
            lease_requeued=result.lease_requeued,
            lease_failed=result.lease_failed,
            republished=result.republished,
        )
    return result
