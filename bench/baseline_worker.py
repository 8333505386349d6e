"""The baselines for `worker` and `scaling_io`: bare Celery tasks (a no-op, a
sleep) with Conveyor's Celery settings."""

from __future__ import annotations

import os
import sys
import time

from celery import Celery

from conveyor.common.queues import DEFAULT_QUEUE, list_name
from conveyor.common.settings import Settings
from conveyor.common.tasks import celery_config

JOBS_QUEUE = list_name(DEFAULT_QUEUE)  # where the no-op tasks wait

NOOP_TASK = "bench.noop"
SLEEP_TASK = "bench.sleep"  # args: [ms], like Conveyor's `sleep` kind


def create_app() -> Celery:
    settings = Settings()  # type: ignore[call-arg]
    app = Celery("bench-baseline", set_as_current=True)
    app.conf.update(celery_config(settings))
    if backend := os.environ.get("BASELINE_RESULT_BACKEND"):
        # e2e_latency's round trip: apply_async().get() needs results stored.
        app.conf.update(result_backend=backend, task_ignore_result=False)

    @app.task(name=NOOP_TASK)
    def noop() -> None:
        return None

    @app.task(name=SLEEP_TASK)
    def sleep(ms: int) -> None:
        time.sleep(ms / 1000)

    return app


if __name__ == "__main__":
    concurrency = os.environ.get("WORKER_CONCURRENCY", "2")
    create_app().worker_main(
        [
            "--quiet",
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={JOBS_QUEUE}",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
            f"--hostname=baseline-{os.getpid()}@bench",
            *sys.argv[1:],
        ]
    )
