"""Publishing many `conveyor.run_job` messages at once from the scheduler.

Delayed jobs fall due in bursts (a batch submitted with one delay), and kombu
sends one message per round trip, a few milliseconds each: 2000 due jobs took
seconds to go out. This sends a batch in one LPUSH per queue (in one MULTI), as the API does
(`conveyor.api.publisher`), built and announced the same way (`direct_push`),
so tracing and the publish-time stamp work as for kombu.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis
from celery import Celery

from conveyor.common.direct_push import announce_pushed, announced_envelope
from conveyor.worker.repository import JobRef


def push_run_jobs(celery: Celery, broker: redis.Redis, jobs: Sequence[JobRef]) -> None:
    """One LPUSH per queue's list for all of `jobs`, in one MULTI/EXEC (kombu's
    Redis transport is an LPUSH onto the queue's list too). Raises on a broker
    error: then none was sent."""
    if not jobs:
        return
    built = [announced_envelope(celery, job.id, job.kind, job.params) for job in jobs]
    by_list: dict[str, list[str]] = {}
    for sent in built:
        by_list.setdefault(sent.queue, []).append(json.dumps(sent.envelope))
    with broker.pipeline(transaction=True) as pipe:
        for queue, payloads in by_list.items():
            pipe.lpush(queue, *payloads)
        pipe.execute()
    for sent in built:
        announce_pushed(sent)
