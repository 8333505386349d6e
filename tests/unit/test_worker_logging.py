"""The worker's logging: Celery's per-task INFO lines give way to ours, except at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from conveyor.worker.app import CELERY_PER_TASK_LOGGERS, configure_worker_logging
from conveyor.worker.settings import WorkerSettings


@pytest.fixture
def restore_levels() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("", *CELERY_PER_TASK_LOGGERS)]
    saved = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, saved, strict=True):
        logger.setLevel(level)


def _settings(level: str) -> WorkerSettings:
    return WorkerSettings(
        database_url="postgresql+psycopg://u:p@db/conveyor",  # type: ignore[arg-type]
        redis_url="redis://r:6379/0",  # type: ignore[arg-type]
        log_level=level,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("level", "lowest_shown"),
    [("DEBUG", logging.DEBUG), ("INFO", logging.WARNING), ("ERROR", logging.ERROR)],
)
def test_celery_per_task_lines_show_from(restore_levels, level, lowest_shown) -> None:  # type: ignore[no-untyped-def]
    configure_worker_logging(_settings(level))
    for name in CELERY_PER_TASK_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.isEnabledFor(lowest_shown), (name, level)
        assert not logger.isEnabledFor(lowest_shown - 10), (name, level)
    # Celery's other loggers follow LOG_LEVEL as before.
    others = logging.getLogger("celery.apps.worker")
    assert others.getEffectiveLevel() == logging.getLevelName(level)
