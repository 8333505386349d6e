"""The API's publisher writes the task message itself (one LPUSH on
redis.asyncio, see publisher.py). It must be the message Celery and kombu would
have written, so that a Celery worker takes it as its own."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis

from conveyor.api.publisher import JobPublisher
from conveyor.common.settings import Settings
from conveyor.common.tasks import make_celery_client, publish_run_job
from conveyor.common.telemetry import PUBLISHED_AT_HEADER
from tests.conftest import fresh_redis_url
from tests.support.engines import Engines

# Fresh per message: ids, where and when it was sent, and its trace context
# (present when an earlier test in this process set tracing up).
_PER_MESSAGE_HEADERS = {"id", "root_id", "argsrepr", "origin", PUBLISHED_AT_HEADER, "traceparent"}
_PER_MESSAGE_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


CPU, IO = "conveyor.jobs.cpu", "conveyor.jobs.io"


def _settings(redis_url: str, kind_queues: str = "") -> Settings:
    return Settings(
        database_url="postgresql://u@localhost/db",  # type: ignore[arg-type]
        redis_url=redis_url,  # type: ignore[arg-type]
        kind_queues=kind_queues,
    )


def _pop(client: redis.Redis, queue: str) -> dict[str, Any]:
    raw = client.rpop(queue)
    assert isinstance(raw, bytes), "no message on the queue"
    return dict(json.loads(raw))


def _shape(message: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in message.items() if k not in ("headers", "properties", "body")},
        "headers": {k: v for k, v in message["headers"].items() if k not in _PER_MESSAGE_HEADERS},
        "properties": {
            k: v for k, v in message["properties"].items() if k not in _PER_MESSAGE_PROPERTIES
        },
        "header_keys": sorted(message["headers"]),
        "property_keys": sorted(message["properties"]),
    }


async def _publish_ours(
    redis_url: str, jobs: list[tuple[uuid.UUID, str, dict[str, Any]]], kind_queues: str = ""
) -> int:
    client = aioredis.Redis.from_url(redis_url)
    celery = make_celery_client(_settings(redis_url, kind_queues), "test")
    publisher = JobPublisher(client, celery, 2.0)
    try:
        return await publisher.publish_many(jobs)
    finally:
        publisher.close()
        await client.aclose()


def test_message_matches_the_one_celery_sends(engines: Engines) -> None:
    url = fresh_redis_url(engines)
    client = redis.Redis.from_url(url)
    job_id = uuid.uuid4()

    celery = make_celery_client(_settings(url), "reference")
    publish_run_job(celery, job_id, "hash", {"data": "x", "iterations": 10})
    celery.close()
    theirs = _pop(client, CPU)

    assert asyncio.run(_publish_ours(url, [(job_id, "hash", {"data": "x", "iterations": 10})])) == 1
    ours = _pop(client, CPU)

    assert _shape(ours) == _shape(theirs)
    body = [json.loads(base64.b64decode(m["body"])) for m in (ours, theirs)]
    assert body[0] == body[1]
    assert ours["headers"]["argsrepr"] == theirs["headers"]["argsrepr"] == repr([str(job_id)])


def test_many_go_out_in_order_in_one_call(engines: Engines) -> None:
    url = fresh_redis_url(engines)
    client = redis.Redis.from_url(url)
    jobs = [(uuid.uuid4(), "sleep", {"ms": 0}) for _ in range(1500)]  # two LPUSH chunks

    assert asyncio.run(_publish_ours(url, jobs)) == 1500

    # Workers take from the right end: the first job published is the first taken.
    taken = [json.loads(base64.b64decode(_pop(client, IO)["body"]))[0][0] for _ in jobs]
    assert taken == [str(job_id) for job_id, _, _ in jobs]


def test_a_dead_broker_costs_nothing_and_reports_nothing_sent(engines: Engines) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert asyncio.run(_publish_ours(dead, [(uuid.uuid4(), "sleep", {"ms": 0})])) == 0


def test_concurrent_publishes_share_round_trips_and_all_arrive(engines: Engines) -> None:
    url = fresh_redis_url(engines)
    client = redis.Redis.from_url(url)
    jobs = [(uuid.uuid4(), "sleep", {"ms": 0}) for _ in range(300)]

    async def publish_concurrently() -> tuple[list[bool], int]:
        broker = aioredis.Redis.from_url(url)
        publisher = JobPublisher(broker, make_celery_client(_settings(url), "test"), 2.0)
        before = int((await broker.info("commandstats")).get("cmdstat_lpush", {}).get("calls", 0))
        try:
            sent = await asyncio.gather(*(publisher.publish(*job) for job in jobs))
        finally:
            publisher.close()
        after = int((await broker.info("commandstats"))["cmdstat_lpush"]["calls"])
        await broker.aclose()
        return list(sent), after - before

    sent, lpush_calls = asyncio.run(publish_concurrently())

    assert sent == [True] * len(jobs)
    queued = {json.loads(base64.b64decode(_pop(client, IO)["body"]))[0][0] for _ in jobs}
    assert queued == {str(job_id) for job_id, _, _ in jobs}
    assert client.llen(IO) == 0
    assert lpush_calls < len(jobs) / 10, lpush_calls  # coalesced, not one per message


def _job_ids(client: redis.Redis, queue: str) -> list[str]:
    """The job ids in `queue`'s list, oldest first (the order workers take them)."""
    envelopes = [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    return [json.loads(base64.b64decode(e["body"]))[0][0] for e in envelopes]


def test_each_kind_goes_to_its_queue_on_either_path(engines: Engines) -> None:
    url = fresh_redis_url(engines)
    client = redis.Redis.from_url(url)
    jobs = [
        (uuid.uuid4(), "hash", {"data": "x", "iterations": 1}),
        (uuid.uuid4(), "sleep", {"ms": 0}),
        (uuid.uuid4(), "primes", {"limit": 10}),
        (uuid.uuid4(), "fail", {"rate": 0.0}),
        (uuid.uuid4(), "sleep", {"ms": 1}),
    ]
    assert asyncio.run(_publish_ours(url, jobs)) == len(jobs)  # one batch, three lists
    celery = make_celery_client(_settings(url), "reference")
    for job_id, kind, params in jobs:  # a retry's or the reconciler's path
        publish_run_job(celery, job_id, kind, params)
    celery.close()

    ids = [str(job_id) for job_id, _, _ in jobs]
    assert _job_ids(client, CPU) == [ids[0], ids[2]] * 2
    assert _job_ids(client, IO) == [ids[1], ids[4]] * 2
    assert _job_ids(client, "conveyor.jobs.default") == [ids[3]] * 2
    assert client.llen("conveyor.jobs") == 0  # the list every kind shared before pools


def test_kind_queues_overrides_the_route_on_either_path(engines: Engines) -> None:
    url = fresh_redis_url(engines)
    client = redis.Redis.from_url(url)
    job = (uuid.uuid4(), "sleep", {"ms": 0})
    assert asyncio.run(_publish_ours(url, [job], kind_queues="sleep=slow")) == 1
    celery = make_celery_client(_settings(url, "sleep=slow"), "reference")
    publish_run_job(celery, *job)
    celery.close()

    assert _job_ids(client, "conveyor.jobs.slow") == [str(job[0])] * 2
    assert client.llen(IO) == 0
