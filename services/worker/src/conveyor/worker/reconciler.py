"""One reconciliation pass: queue delayed jobs that fell due, requeue lost
work, re-publish lost messages, and delete finished jobs past their retention.

Each pass counts what it did in `reconciler_metrics()`, which the scheduler
serves on METRICS_PORT.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import redis
from celery import Celery
from sqlalchemy import Engine

from conveyor.common.logging import get_logger
from conveyor.common.tasks import JOBS_QUEUE, publish_run_job
from conveyor.worker import repository
from conveyor.worker.push import push_run_jobs
from conveyor.worker.repository import JobRef

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

log = get_logger("conveyor.reconciler")


@dataclass(frozen=True)
class ReconcilerMetrics:
    registry: CollectorRegistry
    leases_requeued: Counter
    leases_failed: Counter
    scheduled_queued: Counter
    jobs_pruned: Counter


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
        scheduled_queued=Counter(
            "conveyor_scheduler_delayed_jobs_queued_total",
            "Delayed (scheduled) jobs the scheduler queued and published when they fell due.",
            registry=registry,
        ),
        jobs_pruned=Counter(
            "conveyor_retention_jobs_pruned_total",
            "Finished jobs deleted because they were older than JOB_RETENTION_DAYS.",
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class PassResult:
    lease_requeued: int
    lease_failed: int
    republished: int
    due_queued: int = 0
    pruned: int = 0


# Rows per statement, and statements per pass, for the two scans that may find
# many: each batch is its own short transaction, so nothing waits on a pass.
BATCH = 500
MAX_BATCHES = 20


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


def publish_due(engine: Engine, celery: Celery, broker: redis.Redis) -> int:
    """Queue and publish delayed jobs whose run_at has come, a batch at a time."""
    queued = 0
    for _ in range(MAX_BATCHES):
        due = repository.queue_due_scheduled(engine, BATCH)
        reconciler_metrics().scheduled_queued.inc(len(due))
        queued += len(due)
        try:
            push_run_jobs(celery, broker, due)
        except Exception as exc:  # they stay queued: the stale re-publish sends them
            log.warning("publishing due jobs failed", jobs=len(due), error=str(exc))
            break
        if len(due) < BATCH:
            break
    return queued


def prune_expired(engine: Engine, retention_s: float) -> int:
    """Delete finished jobs older than the retention, a bounded batch at a time."""
    pruned = 0
    for _ in range(MAX_BATCHES):
        deleted = repository.delete_expired(engine, retention_s, BATCH)
        reconciler_metrics().jobs_pruned.inc(deleted)
        pruned += deleted
        if deleted < BATCH:
            break
    return pruned


def reconcile_once(
    engine: Engine,
    celery: Celery,
    broker: redis.Redis,
    *,
    queued_after_s: float,
    retention_s: float | None = None,
) -> PassResult:
    # First: due times are the one thing here that users time.
    due_queued = publish_due(engine, celery, broker)
    requeued, failed = repository.requeue_expired_leases(engine)
    # Counted once committed, before anything below can raise.
    metrics = reconciler_metrics()
    metrics.leases_requeued.inc(len(requeued))
    metrics.leases_failed.inc(failed)
    sent = _publish_all(celery, requeued)
    # Re-publish only as many stale jobs as the broker seems to be missing, so a
    # long but healthy backlog is not flooded with duplicates.
    try:
        depth = int(broker.llen(JOBS_QUEUE))
    except redis.RedisError:
        depth = None
    if depth is not None:
        missing = repository.count_queued(engine) - depth
        if missing > 0:
            stale = repository.touch_stale_queued(engine, queued_after_s, limit=min(missing, 1000))
            sent += _publish_all(celery, stale)
    pruned = prune_expired(engine, retention_s) if retention_s else 0
    result = PassResult(len(requeued), failed, sent, due_queued, pruned)
    if any(vars(result).values()):
        log.info("reconciled", **vars(result))
    return result
