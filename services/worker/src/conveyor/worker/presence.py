"""The worker's heartbeat: a file for the exec probe, and a Redis key with a TTL
so the API can count workers online without asking Celery."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import redis
from celery import bootsteps

from conveyor.common.tasks import WORKER_PRESENCE_PREFIX, WORKER_PRESENCE_TTL_S

BEAT_S = 5.0


class HeartbeatStep(bootsteps.StartStopStep):
    """Runs on the worker's own event loop, so a stuck loop stops the beat."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None
        self.redis: redis.Redis | None = None

    def start(self, parent: Any) -> None:
        settings = parent.app.conveyor_settings
        path = Path(settings.heartbeat_file)
        key = f"{WORKER_PRESENCE_PREFIX}{parent.hostname}"
        self.redis = redis.Redis.from_url(
            settings.broker_url, socket_timeout=2, socket_connect_timeout=2
        )
        client = self.redis
        # What the API's /v1/stats and /metrics count per queue and per pool.
        presence = json.dumps(
            {"concurrency": settings.worker_concurrency, "queues": list(settings.served_queues)}
        )

        def beat() -> None:
            path.touch()
            # The broker may be down; presence comes back with it.
            with contextlib.suppress(redis.RedisError):
                client.set(key, presence, ex=WORKER_PRESENCE_TTL_S)

        beat()
        self.tref = parent.timer.call_repeatedly(BEAT_S, beat, priority=10)

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
        if self.redis is not None:
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(f"{WORKER_PRESENCE_PREFIX}{parent.hostname}")
            self.redis.close()
