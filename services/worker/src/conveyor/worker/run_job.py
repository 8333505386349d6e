"""The `conveyor.run_job` task: claim, run the kind's handler, record the outcome."""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

import structlog
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from conveyor.common.kinds import KINDS
from conveyor.common.logging import get_logger
from conveyor.common.models import JobStatus
from conveyor.common.tasks import publish_run_job
from conveyor.worker import attempts, metrics
from conveyor.worker.cancel import JobCancelled
from conveyor.worker.handlers import TransientJobError, resolve_handlers
from conveyor.worker.runtime import get_runtime

log = get_logger("conveyor.worker.run_job")

# Looked up once, when the worker imports this (before its pool forks): a kind
# whose handler is missing stops the worker at start, not a job at run time.
HANDLERS = resolve_handlers(KINDS.values())


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to base, then 2x, 4x..."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311 - not crypto


def worker_id_for(nodename: str) -> str:
    return f"{nodename}/{os.getpid()}"


def run_job(task: Task[Any, Any], job_id: str) -> None:
    runtime = get_runtime(task.app)
    settings = runtime.settings
    lease_s = settings.job_lease_seconds
    try:
        parsed_id = uuid.UUID(job_id)
    except ValueError:
        log.error("malformed job id in message", job_id=job_id)
        return
    with structlog.contextvars.bound_contextvars(job_id=job_id):
        job = attempts.claim(
            runtime.db, parsed_id, worker_id_for(task.request.hostname or "worker"), lease_s
        )
        if job is None:
            log.info("claim was a no-op: the job is done, cancelled or held elsewhere")
            return
        log.info("job started", kind=job.kind, attempt=job.attempt)
        metrics.job_started(task, job)
        started = time.perf_counter()
        outcome: JobStatus | None
        runtime.lease.hold(job)
        try:
            spec = KINDS.get(job.kind)
            if spec is None:  # sent by an API that knows more kinds: fail it, don't retry
                raise LookupError(f"unknown job kind {job.kind!r}")
            params = spec.params_model.model_validate(job.params)
            with runtime.interrupt.handler_of(job):
                result = HANDLERS[job.kind](params, job.attempt)
        except JobCancelled:
            # The API wrote `cancelled`; any write of ours would be fenced off.
            outcome = JobStatus.CANCELLED
        except (TransientJobError, SoftTimeLimitExceeded) as exc:
            error = str(exc) or "time limit exceeded"
            retry_in = backoff_seconds(
                job.attempt, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds
            )
            outcome = attempts.fail(runtime.db, job, error, retry_in_s=retry_in)
            if outcome is JobStatus.QUEUED:
                publish_run_job(task.app, job.id, job.kind, job.params, countdown=retry_in)
        except Exception as exc:
            log.exception("job raised; not retrying")
            outcome = attempts.fail(
                runtime.db, job, f"{type(exc).__name__}: {exc}", retry_in_s=None
            )
        else:
            succeeded = attempts.succeed(runtime.db, job, result)
            outcome = JobStatus.SUCCEEDED if succeeded else None
        finally:
            # After the outcome write: a renewal racing it is fenced off and harmless.
            runtime.lease.release()
        duration = time.perf_counter() - started
        metrics.job_finished(job.kind, outcome, duration)
        if outcome is None:
            log.warning("outcome discarded: the job was cancelled or its lease lost")
        else:
            log.info(
                "job finished",
                kind=job.kind,
                status=outcome,
                attempt=job.attempt,
                duration_s=round(duration, 4),
            )
