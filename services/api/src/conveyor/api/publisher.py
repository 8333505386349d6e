"""Publishing `conveyor.run_job` from the event loop, straight onto the broker.

The message is conveyor.common.run_job_message's, the one the worker's retries
and the reconciler send through kombu, built and announced by
`conveyor.common.direct_push` (as the scheduler's burst push is): Celery's
publish signals fire around the push, so tracing and the publish-time stamp
work as for `send_task`. The message then goes out with `LPUSH` on
redis.asyncio, which is all kombu's Redis transport does for a direct queue;
messages of concurrent requests share one LPUSH (see `flush`). Sending through
kombu meant a thread hop and a blocking client per publish, which cost more
than the rest of a submit together (bench: ~190 submits/s through kombu on
threads).

tests/integration/test_publisher.py checks the messages against kombu's own and
runs them on a real worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from celery import Celery
from opentelemetry.instrumentation.utils import suppress_instrumentation

from conveyor.common.direct_push import Envelope, announce_pushed, announced_envelope
from conveyor.common.logging import get_logger

log = get_logger(__name__)

JobRef = tuple[uuid.UUID, str, dict[str, Any]]
_CHUNK = 1000  # messages per LPUSH


class JobPublisher:
    """The job rows are committed before this runs. A failed publish is not an
    error for the client: the job stays `queued` and the reconciler publishes it
    again. After a failure we skip the broker for `backoff_s`, so a dead Redis
    costs requests nothing."""

    def __init__(self, redis: aioredis.Redis, celery: Celery, backoff_s: float) -> None:
        self.redis = redis
        self.celery = celery
        self.backoff_s = backoff_s
        self.skip_until = 0.0
        # Per request: (queue's list, JSON message) for each job, and its outcome.
        self.pending: list[tuple[list[tuple[str, str]], asyncio.Future[bool]]] = []
        self.flusher: asyncio.Task[None] | None = None

    def build_message(self, job_id: uuid.UUID, kind: str, params: dict[str, Any]) -> Envelope:
        return announced_envelope(self.celery, job_id, kind, params)

    async def send_batch(self, jobs: Sequence[JobRef]) -> int:
        if not jobs or time.monotonic() < self.skip_until:
            return 0
        built = [self.build_message(job_id, kind, params) for job_id, kind, params in jobs]
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending.append(
            (
                [(sent.queue, json.dumps(sent.envelope)) for sent in built],
                done,
            )
        )
        if self.flusher is None or self.flusher.done():
            # A context of its own: the flush serves many requests, not the first.
            self.flusher = asyncio.create_task(self.flush(), context=contextvars.Context())
        if not await done:
            return 0
        for sent in built:
            announce_pushed(sent)
        return len(built)

    async def flush(self) -> None:
        """Sends whatever requests queued up while the previous LPUSH was in
        flight, in one LPUSH (order kept), until nothing waits.

        Under load this turns dozens of round trips into one, which was a
        third of a submit's cost; an idle API still sends each message at once.
        One LPUSH per queue's list in the batch, each list in submit order.
        """
        while self.pending:
            batch, self.pending = self.pending, []
            by_list: dict[str, list[str]] = {}
            for messages, _ in batch:
                for queue, payload in messages:
                    by_list.setdefault(queue, []).append(payload)
            sent = True
            try:
                # Outside any request, so the Redis span would be dropped anyway
                # (telemetry: no orphan CLIENT spans); each job's publish span
                # covers it. Skipping it saves its sampling work per flush.
                with suppress_instrumentation():
                    for queue, payloads in by_list.items():
                        for start in range(0, len(payloads), _CHUNK):
                            await self.redis.lpush(queue, *payloads[start : start + _CHUNK])
            except Exception as exc:  # connection, timeout, OOM...: all mean "not sent"
                sent = False
                self.skip_until = time.monotonic() + self.backoff_s
                log.warning(
                    "publish failed; the reconciler will retry",
                    jobs=sum(len(payloads) for payloads in by_list.values()),
                    error=f"{type(exc).__name__}: {exc}",
                )
            for _, done in batch:
                if not done.done():  # a cancelled request still had its message sent
                    done.set_result(sent)

    async def publish(self, job_id: uuid.UUID, kind: str, params: dict[str, Any]) -> bool:
        return await self.send_batch([(job_id, kind, params)]) == 1

    async def publish_many(self, jobs: Sequence[JobRef]) -> int:
        """Publish many in as few round trips as possible; returns how many were sent."""
        return await self.send_batch(jobs)

    def close(self) -> None:
        self.celery.close()
