"""One `conveyor.run_job` message for every sender (conveyor.common.run_job_message).

The API pushes its envelope onto Redis itself; the worker's retries (and the
reconciler) send through kombu with `publish_run_job`. Here both go through
kombu's in-memory transport, a virtual transport like Redis's that stores the
very envelope Redis's list holds, to a real Celery worker (an embedded one,
in threads): it runs both, with the kind's time limits, and the two carry the
same headers. tests/integration/test_publisher.py compares the API's message
with kombu's on a real Redis.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from celery import Celery, Task
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from kombu.transport import memory

from conveyor.api.publisher import JobPublisher
from conveyor.common.run_job_message import RUN_JOB_TASK
from conveyor.common.settings import Settings
from conveyor.common.tasks import celery_config, publish_run_job
from conveyor.common.telemetry import PUBLISHED_AT_HEADER

# Fresh for each message: its ids, its publish time and trace context, and a
# retry's delay.
_PER_MESSAGE = {"id", "root_id", "eta", PUBLISHED_AT_HEADER, "traceparent"}


def _app(name: str) -> Celery:
    settings = Settings(
        database_url="postgresql://u@localhost/db",  # type: ignore[arg-type]
        redis_url="redis://localhost:1/0",  # type: ignore[arg-type]
    )
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings), broker_url="memory://")
    return app


def _api_envelope(app: Celery, job_id: uuid.UUID, kind: str, params: dict[str, Any]) -> Any:
    """What the API's publisher LPUSHes for this job (before JSON encoding)."""
    publisher = JobPublisher(aioredis.Redis(), app, backoff_s=1.0)  # connects on first use only
    return publisher.build_message(job_id, kind, params).envelope


QUEUES = ("conveyor.jobs.io", "conveyor.jobs.cpu", "conveyor.jobs.default")


def _queued(name: str) -> list[Any]:
    queue = memory.Channel.queues.get(name)  # shared by every memory:// connection
    items = []
    while queue is not None and not queue.empty():
        items.append(queue.get_nowait())
    return items


@pytest.fixture(autouse=True)
def _empty_memory_broker() -> Iterator[None]:
    for name in QUEUES:
        memory.Channel.queues.pop(name, None)
    yield
    for name in QUEUES:
        memory.Channel.queues.pop(name, None)


@pytest.fixture
def _keep_current_app() -> Iterator[None]:
    """start_worker makes its app the current and default one; later tests in
    this process must not find our test task through `current_app`."""
    current = celery_state.get_current_app()
    default = celery_state.default_app  # type: ignore[attr-defined]
    yield
    current.set_current()
    celery_state.set_default_app(default)


def test_the_api_and_a_retry_send_the_same_headers_for_the_same_job() -> None:
    app = _app("sender")
    job_id, kind, params = uuid.uuid4(), "sleep", {"ms": 1500}
    ours = _api_envelope(app, job_id, kind, params)
    publish_run_job(app, job_id, kind, params, countdown=2.5)  # as run_job's retry calls it
    (retry,) = _queued("conveyor.jobs.io")
    app.close()

    def same_for_the_job(headers: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in headers.items() if k not in _PER_MESSAGE}

    assert same_for_the_job(retry["headers"]) == same_for_the_job(ours["headers"])
    assert ours["headers"]["timelimit"] == [31, 26]  # sleep: 30 s + ms, soft 5 s earlier
    assert ours["headers"]["ignore_result"] is True
    assert ours["headers"]["eta"] is None and retry["headers"]["eta"]
    assert set(retry["headers"]) == set(ours["headers"])
    assert set(retry["properties"]) == set(ours["properties"])
    assert retry["body"] == ours["body"]  # base64 of the same JSON body


@pytest.mark.usefixtures("_keep_current_app")
def test_a_celery_worker_runs_the_message_of_either_path() -> None:
    app = _app("worker")
    ran: dict[str, Any] = {}
    both_ran = threading.Event()

    # Not shared: Celery would register a shared task in every app built later.
    @app.task(name=RUN_JOB_TASK, bind=True, shared=False)
    def run_job(self: Task[Any, Any], job_id: str) -> None:
        ran[job_id] = (tuple(self.request.timelimit or ()), self.request.eta is not None)
        if len(ran) == 2:
            both_ran.set()

    api_job, retried_job = uuid.uuid4(), uuid.uuid4()
    served = "conveyor.jobs.cpu,conveyor.jobs.default"  # the api path sends hash, the retry fail
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=served
    ):
        envelope = _api_envelope(app, api_job, "hash", {"data": "x", "iterations": 1})
        with app.connection_for_write() as conn:
            channel = cast(memory.Channel, conn.default_channel)
            channel._put("conveyor.jobs.cpu", envelope)  # what LPUSH leaves in Redis
        publish_run_job(app, retried_job, "fail", {"rate": 1.0}, countdown=0.2)
        assert both_ran.wait(15), ran
    app.close()

    assert ran == {
        str(api_job): ((300, 295), False),
        str(retried_job): ((30, 25), True),
    }
