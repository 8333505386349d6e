"""Kind -> queue routing (KIND_QUEUES), the queues a worker serves
(WORKER_QUEUES), and how the API counts workers per pool from their presence."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conveyor.api.pools import summarize
from conveyor.common.queues import worker_lists
from conveyor.worker.settings import WorkerSettings

URLS = {"database_url": "postgresql://u@h/db", "redis_url": "redis://h:6379/0"}


def settings(**env: str) -> WorkerSettings:
    return WorkerSettings(**URLS, **env)  # type: ignore[arg-type]


def test_the_default_routes_and_a_worker_that_serves_every_queue() -> None:
    default = settings()
    assert default.queue_routes == {
        "sleep": "io",
        "hash": "cpu",
        "primes": "cpu",
        "fail": "default",
    }
    assert default.served_queues == ("cpu", "default", "io")
    # It also drains the one list every kind shared before pools (an upgrade).
    assert worker_lists(default.served_queues) == [
        "conveyor.jobs.cpu",
        "conveyor.jobs.default",
        "conveyor.jobs.io",
        "conveyor.jobs",
    ]


def test_kind_queues_overrides_and_adds_a_queue_a_worker_may_serve() -> None:
    custom = settings(kind_queues=" hash = gpu , sleep=cpu", worker_queues="gpu")
    assert custom.queue_routes == {
        "sleep": "cpu",
        "hash": "gpu",
        "primes": "cpu",
        "fail": "default",
    }
    assert custom.served_queues == ("gpu",)
    assert worker_lists(custom.served_queues) == ["conveyor.jobs.gpu"]
    assert settings(worker_queues="io, cpu,io").served_queues == ("cpu", "io")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"worker_queues": "gpu"}, "names gpu, which no kind is routed to"),
        ({"worker_queues": "cpu;io"}, "queue name 'cpu;io' is invalid"),
        ({"kind_queues": "sleep:io"}, "entry 'sleep:io' is not kind=queue"),
        ({"kind_queues": "sleep=io,sleep=cpu"}, "names kind 'sleep' twice"),
        ({"kind_queues": "sleep="}, "entry 'sleep=' is not kind=queue"),
    ],
)
def test_bad_queue_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**env)


def test_workers_are_counted_per_pool_and_per_queue() -> None:
    queues = ("cpu", "default", "io")
    presences = [
        json.dumps({"concurrency": 2, "queues": ["cpu"]}),
        json.dumps({"concurrency": 2, "queues": ["cpu"]}),
        json.dumps({"concurrency": 4, "queues": ["io", "default"]}),
        "2",  # a worker from before pools: it serves every queue
    ]
    view = summarize(queues, [5, 0, 1], presences)
    assert view.pools == {"cpu": 2, "default,io": 1, "cpu,default,io": 1}
    assert view.queue_workers == {"cpu": 3, "default": 2, "io": 2}
    assert view.depths == {"cpu": 5, "default": 0, "io": 1}
    assert (view.total_depth, view.total_workers) == (6, 4)
