"""Pushing `conveyor.run_job` onto Redis ourselves, announced like kombu's publish.

The API (every submit) and the scheduler (due delayed jobs, in bursts) LPUSH
many messages in one round trip instead of one kombu publish each. Both build
the message here and send Celery's publish signals around the push, so tracing
injects `traceparent` and telemetry stamps the publish time exactly as for a
message kombu sends (`tasks.publish_run_job`).
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from celery import Celery, signals

from conveyor.common.run_job_message import (
    RUN_JOB_TASK,
    job_queue,
    redis_envelope,
    run_job_message,
)


class Envelope(NamedTuple):
    queue: str  # the Redis list it goes to
    envelope: dict[str, Any]  # as kombu's Redis transport stores it (JSON-encode, then LPUSH)
    body: Any


def announced_envelope(
    celery: Celery, job_id: uuid.UUID, kind: str, params: dict[str, Any]
) -> Envelope:
    """The message for one job, with `before_task_publish` sent for it."""
    message = run_job_message(celery, job_id, kind, params)
    queue = job_queue(celery, kind)
    signals.before_task_publish.send(
        sender=RUN_JOB_TASK,
        body=message.body,
        exchange="",
        routing_key=queue,
        declare=[],
        headers=message.headers,
        properties=message.properties,
        retry_policy={},
    )
    return Envelope(queue, redis_envelope(message, queue), message.body)


def announce_pushed(sent: Envelope) -> None:
    """`after_task_publish` for a message now on its list."""
    signals.after_task_publish.send(
        sender=RUN_JOB_TASK,
        body=sent.body,
        headers=sent.envelope["headers"],
        exchange="",
        routing_key=sent.queue,
    )
