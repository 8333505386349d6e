"""Publishing `conveyor.run_job` from async code without blocking the loop."""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery import Celery
from starlette.concurrency import run_in_threadpool

from conveyor.common.logging import get_logger
from conveyor.common.tasks import publish_run_job

log = get_logger(__name__)


class JobPublisher:
    """Sends tasks on a worker thread; the job row is already committed.

    A failed publish is not an error for the client: the job stays `queued`
    and the reconciler publishes it again. After a failure we skip the broker
    for `backoff_s`, so a dead Redis costs requests nothing.
    """

    def __init__(self, celery: Celery, backoff_s: float) -> None:
        self.celery = celery
        self.backoff_s = backoff_s
        self._skip_until = 0.0

    async def publish(self, job_id: uuid.UUID, kind: str, params: dict[str, Any]) -> bool:
        if time.monotonic() < self._skip_until:
            return False
        try:
            await run_in_threadpool(publish_run_job, self.celery, job_id, kind, params)
            return True
        except Exception as exc:  # kombu raises many types; all mean "not sent"
            self._skip_until = time.monotonic() + self.backoff_s
            log.warning(
                "publish failed; the reconciler will retry",
                job_id=str(job_id),
                error=f"{type(exc).__name__}: {exc}",
            )
            return False

    async def publish_many(self, jobs: list[tuple[uuid.UUID, str, dict[str, Any]]]) -> int:
        """Publish many on one thread hop and one producer; returns how many were sent."""
        if time.monotonic() < self._skip_until or not jobs:
            return 0

        def send_all() -> int:
            sent = 0
            with self.celery.producer_or_acquire() as producer:
                for job_id, kind, params in jobs:
                    publish_run_job(self.celery, job_id, kind, params, producer=producer)
                    sent += 1
            return sent

        try:
            return await run_in_threadpool(send_all)
        except Exception as exc:
            self._skip_until = time.monotonic() + self.backoff_s
            log.warning("batch publish failed; the reconciler will retry", error=str(exc))
            return 0

    def close(self) -> None:
        self.celery.close()
