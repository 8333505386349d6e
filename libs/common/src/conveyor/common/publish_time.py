"""Every task message carries its publish time (epoch seconds): the worker's
queue-wait histogram is claim time minus this (or minus the ETA, if later)."""

from __future__ import annotations

import time
from typing import Any

from celery import signals

PUBLISHED_AT_HEADER = "conveyor_published_at"


def stamp_publish_time() -> None:
    """Stamp every task message this process publishes with `PUBLISHED_AT_HEADER`."""
    signals.before_task_publish.connect(add_published_at, weak=False, dispatch_uid=__name__)


def add_published_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(PUBLISHED_AT_HEADER, round(time.time(), 6))
