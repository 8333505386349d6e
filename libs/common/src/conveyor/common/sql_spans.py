"""CLIENT spans for the SQL sent without SQLAlchemy: the API's asyncpg hot path
and the worker's psycopg statements. Named and attributed like the SQLAlchemy
instrumentation's spans for everything else, and created only when this process
exports spans."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from conveyor.common.telemetry import exporting_spans

_NOT_TRACED = contextlib.nullcontext()


@functools.cache
def _tracer(provider: trace.TracerProvider, scope: str) -> trace.Tracer:
    # get_tracer builds a new Tracer (and its scope) on every call.
    return provider.get_tracer(scope)


class _SqlSpan:
    """A plain context manager: the generator-based ones cost a visible share
    of a submit when every span is exported."""

    def __init__(self, scope: str, name: str, attributes: Mapping[str, Any]) -> None:
        self.scope = scope
        self.name = name
        self.attributes = attributes

    def __enter__(self) -> None:
        tracer = _tracer(trace.get_tracer_provider(), self.scope)
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


def sql_span(scope: str, name: str, attributes: Mapping[str, Any]) -> Any:
    """A CLIENT span around one statement when spans are exported and the current
    span is recorded; else nothing.

    With head sampling most requests are not sampled, and every supported
    sampler would drop this span then: parent-based ones follow the parent, a
    ratio decides by the same trace id, and a CLIENT span with no parent is
    never kept (tracing_config.NoOrphanClientSpans). Not building it saves the
    sampler call and a non-recording span per statement.
    """
    if exporting_spans() and trace.get_current_span().is_recording():
        return _SqlSpan(scope, name, attributes)
    return _NOT_TRACED


@functools.cache
def statement_attributes(statement: str) -> dict[str, str]:
    """The attributes of a fixed statement, whitespace folded (computed once)."""
    return {"db.system": "postgresql", "db.statement": " ".join(statement.split())}
