"""The job id on every log line about a job: Celery's own lines included."""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

from conveyor.common.tasks import RUN_JOB_TASK

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Celery's loggers that describe one task from the main process, where no job
# context is bound: "Task ... received", "Task handler raised error: WorkerLostError".
TASK_LOGGERS = ("celery.worker.strategy", "celery.worker.request", "celery.app.trace")


class JobIdFromTaskArgs(logging.Filter):
    """Adds `job_id` to Celery's own lines about a `conveyor.run_job` message."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict) and data.get("name") == RUN_JOB_TASK:
            found = _UUID.search(str(data.get("args", "")))
            if found and not hasattr(record, "job_id"):
                record.job_id = found.group(0)
        return True


def add_job_id_filters() -> None:
    """Main process: Celery's task lines carry the job id (idempotent)."""
    for name in TASK_LOGGERS:
        task_logger = logging.getLogger(name)
        if not any(isinstance(f, JobIdFromTaskArgs) for f in task_logger.filters):
            task_logger.addFilter(JobIdFromTaskArgs())


def bind_job_id(args: Any) -> None:
    """In a child, for the task about to run: its lines (the outcome line too) carry the job id."""
    if args:
        structlog.contextvars.bind_contextvars(job_id=str(args[0]))


def unbind_job_id() -> None:
    structlog.contextvars.unbind_contextvars("job_id")
