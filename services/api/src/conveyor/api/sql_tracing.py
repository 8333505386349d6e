"""Client spans for the SQL the API sends with asyncpg (pg.py), named and
attributed like the SQLAlchemy instrumentation's spans for the other routes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace

from conveyor.common.telemetry import exporting_spans

_TRACER_NAME = "conveyor.api.sql"


@contextlib.contextmanager
def traced(name: str, statement: str) -> Iterator[None]:
    """A CLIENT span around one statement when spans are exported; else nothing."""
    if not exporting_spans():
        yield
        return
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        name,
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.statement": " ".join(statement.split())},
    ):
        yield
