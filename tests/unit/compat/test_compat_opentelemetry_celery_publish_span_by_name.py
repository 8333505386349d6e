"""compat entry opentelemetry_celery.publish_span_by_name: with the stock
instrumentor, the publish span of a task sent by name has already ended when
the message is handed to the broker; with the entry, it lasts until the
message is sent, and the caller's span stays current throughout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind

from conveyor.common.compat.opentelemetry_celery import by_name_instrumentor_class
from conveyor.common.publish_time import PUBLISHED_AT_HEADER, stamp_publish_time
from conveyor.common.tasks import RUN_JOB_TASK

Traced = tuple[InMemorySpanExporter, TracerProvider]


def _traced(instrumentor: Any) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter, provider
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def stock() -> Iterator[Traced]:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    yield from _traced(CeleryInstrumentor())


@pytest.fixture
def patched() -> Iterator[Traced]:
    yield from _traced(by_name_instrumentor_class()())


def _send_by_name(provider: TracerProvider) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Send run_job by name inside a request span: what is current right after,
    the request span, and the headers as sent (with the time they were, in ns)."""
    stamp_publish_time()
    app = Celery("client", set_as_current=False, broker="memory://")
    sent: list[dict[str, Any]] = []

    def capture(headers: dict[str, Any] | None = None, **_: Any) -> None:
        # Runs after the instrumentation's receiver: the headers as they will be sent.
        sent.append({**(headers or {}), "sent_ns": time.time_ns()})

    signals.before_task_publish.connect(capture, weak=False)
    token = context.attach(context.Context())  # a clean context, whatever leaks
    try:
        with provider.get_tracer("t").start_as_current_span("request") as request:
            app.send_task(RUN_JOB_TASK, args=["job-1"])
            current = trace.get_current_span()
    finally:
        signals.before_task_publish.disconnect(capture)
        context.detach(token)
    return current, request, sent


def test_stock_publish_span_by_name_ends_before_the_send(stock: Traced) -> None:
    exporter, provider = stock
    _, _, sent = _send_by_name(provider)
    publish = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER)
    assert publish.end_time is not None and publish.end_time <= sent[0]["sent_ns"]


def test_patched_publish_span_lasts_until_sent_and_is_never_current(
    patched: Traced,
) -> None:
    exporter, provider = patched
    current, request, sent = _send_by_name(provider)
    assert current is request
    publish = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER)
    assert publish.name == f"apply_async/{RUN_JOB_TASK}"
    assert (
        publish.parent is not None and publish.parent.span_id == request.get_span_context().span_id
    )
    assert publish.end_time is not None and publish.end_time > sent[0]["sent_ns"]
    traceparent = sent[0]["traceparent"]
    assert traceparent.split("-")[2] == format(publish.context.span_id, "016x")
    assert abs(sent[0][PUBLISHED_AT_HEADER] - time.time()) < 5


def test_an_unsampled_trace_is_carried_without_a_span(patched: Traced) -> None:
    exporter, _ = patched
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    current, request, sent = _send_by_name(unsampled)
    assert current is request
    assert not any(s.kind is SpanKind.PRODUCER for s in exporter.get_finished_spans())
    _, trace_id, _, flags = sent[0]["traceparent"].split("-")
    assert trace_id == format(request.get_span_context().trace_id, "032x")
    assert not int(flags, 16) & 1  # not sampled
