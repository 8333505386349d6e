"""One structlog ProcessorFormatter renders every logger (ours, uvicorn's, Celery's).

Every process calls `configure_logging` once at start. Output goes to stdout
only, never to files:

- `LOG_FORMAT=json` (the default): one JSON object per line, keys in this order:
  `timestamp` (ISO 8601, UTC), `level`, `logger`, `message`, then `trace_id`
  and `span_id` when a span is current, `request_id` / `job_id` when bound,
  and the event's own fields. structlog calls the message `event`; we rename it
  to `message`, the key log pipelines (Loki, Elasticsearch, Cloud Logging)
  look for.
- `LOG_FORMAT=console`: the same events, one readable line each, for people.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from conveyor.common.compat.stdlib_logging import skip_caller_lookup

# Loggers that install their own handlers or stop propagation; we reset them so
# that everything reaches the one root handler.
_LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "celery",
    "celery.app.trace",
    "celery.worker",
    "celery.task",
    "celery.redirected",
    "kombu",
    "amqp",
    "flower",
    "tornado",
    "tornado.access",
    "tornado.application",
    "tornado.general",
)
_FIRST_KEYS = ("timestamp", "level", "logger", "message")
# Extra attributes libraries attach to records that are noise in JSON
# (uvicorn's ANSI-coloured duplicate of the message, for one).
_DROPPED_EXTRAS = ("color_message",)


def _add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def _drop_noise(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in _DROPPED_EXTRAS:
        event.pop(key, None)
    return event


def _first_keys_first(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    ordered = {key: event.pop(key) for key in _FIRST_KEYS if key in event}
    ordered.update(event)
    return ordered


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
        structlog.stdlib.ExtraAdder(),
        _drop_noise,
    ]


def _renderers(fmt: str) -> list[Processor]:
    if fmt == "console":
        # ConsoleRenderer formats exceptions itself.
        return [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    return [
        structlog.processors.format_exc_info,
        structlog.processors.EventRenamer("message"),
        _first_keys_first,
        structlog.processors.JSONRenderer(),
    ]


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger in this process to one stdout handler.

    Idempotent: calling it again (Celery's `setup_logging` signal does) replaces
    the handler instead of adding a second one.
    """
    # The Logging HOWTO's optimisations: no thread or process fields, which our
    # output never shows (and no caller lookup: see skip_caller_lookup below).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    shared = _shared_processors()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderers(fmt),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn, Celery and Tornado install their own handlers; route them through ours.
    for name in _LIBRARY_LOGGERS:
        lib_logger = logging.getLogger(name)
        lib_logger.handlers[:] = []
        lib_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(level)
    # Python warnings become log events too, instead of raw stderr text.
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Last, so that a warning (a Python outside the verified range) is rendered by our handler.
    skip_caller_lookup()


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
