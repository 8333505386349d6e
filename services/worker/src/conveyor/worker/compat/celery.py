"""Celery's worker: shutdown notices as log events (`say_through_logging`).

Upstream behaviour: `celery.apps.worker.safe_say` writes shutdown notices
("worker: Warm shutdown (MainProcess)", "Hitting Ctrl+C again ...") straight
to the process's real stdout (or stderr) with os.write, bypassing logging, and
no setting turns them off or routes them (celery/celery#8101). Our stdout
carries one JSON object per line, so those raw lines break log pipelines.
The entry replaces the module-level `safe_say` with a function that logs.

Verified against Celery 5.7.x. Outside that range: not applied, one warning;
the notices are printed as plain text again, nothing else changes.
"""

from __future__ import annotations

from typing import Any

from conveyor.common.compat import supported
from conveyor.common.logging import get_logger

ENTRY = "celery.say_through_logging"
CELERY_RANGE = ("celery", "5.7", "5.8")

log = get_logger("conveyor.worker")


def say(msg: str, file: Any = None) -> None:
    log.info(msg.strip())


def say_through_logging() -> bool:
    """Route Celery's shutdown notices through logging. True when applied."""
    if not supported(ENTRY, *CELERY_RANGE):
        return False
    import celery.apps.worker as celery_worker

    celery_worker.safe_say = say  # type: ignore[attr-defined]
    return True
