"""configure_logging: one JSON object per line on stdout, for structlog and stdlib loggers alike."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from conveyor.common.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line]


def test_structlog_event_is_one_json_line_with_the_standard_keys(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO", "json")
    get_logger("conveyor.test").info("job finished", kind="sleep", duration_s=0.1)
    [event] = lines(capsys)
    assert list(event)[:4] == ["timestamp", "level", "logger", "message"]
    assert event["message"] == "job finished"
    assert "event" not in event
    assert event["level"] == "info"
    assert event["logger"] == "conveyor.test"
    assert event["timestamp"].endswith("Z")
    assert (event["kind"], event["duration_s"]) == ("sleep", 0.1)
    assert "trace_id" not in event  # no span is current


def test_bound_ids_and_the_current_span_are_on_every_line(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO", "json")
    tracer = TracerProvider().get_tracer("test")
    with (
        structlog.contextvars.bound_contextvars(request_id="r-1", job_id="j-1"),
        tracer.start_as_current_span("work") as span,
    ):
        get_logger("conveyor.test").info("ours")
        logging.getLogger("celery.app.trace").info("theirs %s", "too")
    ctx = span.get_span_context()
    for event in lines(capsys):
        assert event["request_id"] == "r-1" and event["job_id"] == "j-1"
        assert event["trace_id"] == format(ctx.trace_id, "032x")
        assert event["span_id"] == format(ctx.span_id, "016x")


def test_stdlib_records_are_formatted_and_keep_their_extras(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO", "json")
    logging.getLogger("celery.worker.strategy").info(
        "Task %s received", "t-1", extra={"data": {"id": "t-1"}}
    )
    # uvicorn adds an ANSI-coloured copy of each message: noise in JSON.
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 7, extra={"color_message": "\x1b[1m7\x1b[0m"}
    )
    first, second = lines(capsys)
    assert first["message"] == "Task t-1 received"
    assert first["logger"] == "celery.worker.strategy"
    assert first["data"] == {"id": "t-1"}
    assert second["message"] == "Started server process [7]"
    assert "color_message" not in second


def test_library_handlers_are_replaced_by_ours(capsys) -> None:  # type: ignore[no-untyped-def]
    stray = logging.StreamHandler()
    logging.getLogger("uvicorn.access").addHandler(stray)
    logging.getLogger("uvicorn.access").propagate = False
    configure_logging("INFO", "json")
    configure_logging("INFO", "json")  # idempotent: still one handler
    assert len(logging.getLogger().handlers) == 1
    assert stray not in logging.getLogger("uvicorn.access").handlers
    logging.getLogger("uvicorn.access").info("hello")
    assert [e["message"] for e in lines(capsys)] == ["hello"]


def test_exceptions_stay_inside_one_line(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("conveyor.test").exception("job raised")
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    event = json.loads(out)
    assert event["level"] == "error"
    assert "Traceback" in event["exception"] and "ValueError: boom" in event["exception"]


def test_level_filters_before_rendering(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("WARNING", "json")
    get_logger("conveyor.test").info("hidden")
    logging.getLogger("kombu").info("hidden too")
    get_logger("conveyor.test").warning("shown")
    assert [e["message"] for e in lines(capsys)] == ["shown"]


def test_python_warnings_become_json_events(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful", UserWarning, stacklevel=1)
    [event] = lines(capsys)
    assert event["logger"] == "py.warnings"
    assert "careful" in event["message"]


def test_console_format_is_readable_not_json(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO", "console")
    get_logger("conveyor.test").info("job finished", kind="sleep")
    out = capsys.readouterr().out.strip()
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert "job finished" in out and "kind" in out and "sleep" in out
    assert "\x1b[" not in out  # no colours when stdout is not a terminal
