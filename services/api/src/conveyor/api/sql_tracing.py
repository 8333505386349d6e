"""Client spans for the SQL the API sends with asyncpg (pg.py), named and
attributed like the SQLAlchemy instrumentation's spans for the other routes."""

from __future__ import annotations

import contextlib
import functools
from types import TracebackType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from conveyor.common.telemetry import exporting_spans

_NOT_TRACED = contextlib.nullcontext()


@functools.cache
def _attributes(statement: str) -> dict[str, str]:
    return {"db.system": "postgresql", "db.statement": " ".join(statement.split())}


@functools.cache
def _tracer(provider: trace.TracerProvider) -> trace.Tracer:
    # get_tracer builds a new Tracer (and its scope) on every call.
    return provider.get_tracer("conveyor.api.sql")


class _SqlSpan:
    """A plain context manager: the generator-based ones cost a visible share
    of a submit when every span is exported."""

    def __init__(self, name: str, statement: str) -> None:
        self.name = name
        self.attributes = _attributes(statement)

    def __enter__(self) -> None:
        tracer = _tracer(trace.get_tracer_provider())
        self.span = tracer.start_span(
            self.name, kind=trace.SpanKind.CLIENT, attributes=self.attributes
        )
        self.token = context.attach(trace.set_span_in_context(self.span))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _: TracebackType | None,
    ) -> None:
        context.detach(self.token)
        if error is not None and kind is not None:
            self.span.record_exception(error)
            self.span.set_attribute(ERROR_TYPE, kind.__qualname__)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR))
        self.span.end()


def traced(name: str, statement: str) -> Any:
    """A CLIENT span around one statement when spans are exported; else nothing."""
    return _SqlSpan(name, statement) if exporting_spans() else _NOT_TRACED
