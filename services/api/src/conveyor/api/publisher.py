"""Publishing `conveyor.run_job` from async code without blocking the loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery

from conveyor.common.logging import get_logger
from conveyor.common.tasks import publish_run_job

log = get_logger(__name__)

JobRef = tuple[uuid.UUID, str, dict[str, Any]]


class JobPublisher:
    """Sends tasks on a few dedicated threads, each keeping one broker
    connection and producer open; the job rows are already committed.

    A kombu producer per publish would open a new Redis connection each time,
    which costs more than the whole rest of a submit. A failed publish is not
    an error for the client: the job stays `queued` and the reconciler
    publishes it again. After a failure we skip the broker for `backoff_s`,
    so a dead Redis costs requests nothing.
    """

    def __init__(self, celery: Celery, backoff_s: float, threads: int = 4) -> None:
        self.celery = celery
        self.backoff_s = backoff_s
        self._skip_until = 0.0
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="publisher")
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def _producer(self) -> Any:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            connection = self.celery.connection_for_write()
            producer = self.celery.amqp.Producer(connection)
            self._local.producer = producer
            with self._lock:
                self._connections.append(connection)
        return producer

    def _send(self, jobs: Sequence[JobRef]) -> int:
        # Checked here too: publishes queued behind a failing one give up at once.
        if time.monotonic() < self._skip_until:
            return 0
        producer = self._producer()
        sent = 0
        try:
            for job_id, kind, params in jobs:
                publish_run_job(self.celery, job_id, kind, params, producer=producer)
                sent += 1
        except Exception:
            self._skip_until = time.monotonic() + self.backoff_s
            # Drop the broken connection; the next publish on this thread reconnects.
            self._local.producer = None
            with contextlib.suppress(Exception):
                producer.connection.close()
            raise
        return sent

    async def _run(self, jobs: Sequence[JobRef]) -> int:
        if time.monotonic() < self._skip_until or not jobs:
            return 0
        # Carry contextvars (trace and request ids) to the publishing thread.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, context.run, self._send, jobs)
        except Exception as exc:  # kombu raises many types; all mean "not sent"
            self._skip_until = time.monotonic() + self.backoff_s
            log.warning(
                "publish failed; the reconciler will retry",
                jobs=len(jobs),
                job_id=str(jobs[0][0]),
                error=f"{type(exc).__name__}: {exc}",
            )
            return 0

    async def publish(self, job_id: uuid.UUID, kind: str, params: dict[str, Any]) -> bool:
        return await self._run([(job_id, kind, params)]) == 1

    async def publish_many(self, jobs: Sequence[JobRef]) -> int:
        """Publish many on one thread hop and one producer; returns how many were sent."""
        return await self._run(jobs)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(Exception):
                    connection.close()
        self.celery.close()
