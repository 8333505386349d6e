"""The span exporter's own encoder says exactly what upstream's encoder says.

Each case parses our bytes as an ExportTraceServiceRequest and compares the
message with the one upstream's `encode_spans` builds from the same spans.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from conveyor.common.span_export import SpanEncoder, SpanExporter


def _provider(
    resource: Resource, limits: SpanLimits | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _varied_spans() -> list[ReadableSpan]:
    """Spans from two resources and several scopes, with every attribute type,
    events, links, statuses, trace state, remote parents and dropped counts."""
    api, api_spans = _provider(Resource({"service.name": "api", "service.version": "1.2.3"}))
    other, other_spans = _provider(
        Resource({"service.name": "worker", "k8s.pod.name": "w-0"}, schema_url="https://x/1.21.0"),
        SpanLimits(max_span_attributes=2, max_events=1, max_links=1),
    )
    server = api.get_tracer("fastapi", "0.165")
    scoped = api.get_tracer("conveyor", "1", schema_url="https://x/1.26.0", attributes={"a": 1})
    again = api.get_tracer("fastapi", "0.165")  # a distinct but equal scope object
    worker = other.get_tracer("celery")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    with server.start_as_current_span(
        "POST /v1/jobs",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "server.port": 8000,
            "url.path": "/v1/jobs/é✓",
            "empty": "",
            "yes": True,
            "no": False,
            "zero": 0,
            "negative": -5,
            "int64.max": 2**63 - 1,
            "int64.min": -(2**63),
            "ratio": 0.25,
            "inf": math.inf,
            "negative.zero": -0.0,
            "strings": ["a", "b"],
            "ints": (1, 2, 3),
            "bools": [True, False],
            "floats": [1.5],
        },
    ) as root:
        with scoped.start_as_current_span("INSERT jobs", kind=SpanKind.CLIENT) as sql:
            sql.set_attribute("db.system.name", "postgresql")
            sql.add_event("retry", {"attempt": 2})
        again.start_span("internal", links=[Link(remote, {"why": "batch"})]).end()
        try:
            with scoped.start_as_current_span("fails"):
                raise ValueError("boom ✗")
        except ValueError:
            pass
        root.set_status(Status(StatusCode.OK))
    for n in range(3):
        with worker.start_as_current_span(f"run/{n}", kind=SpanKind.CONSUMER) as run:
            run.set_attributes({"a": 1, "b": 2, "c": 3})  # over the limit of 2
            run.add_event("one")
            run.add_event("two")  # over the limit of 1
            run.set_status(Status(StatusCode.ERROR, "worker lost"))
    with worker.start_as_current_span("linked", links=[Link(remote), Link(remote)]):
        pass
    # Interleave the two providers' spans, as a batch would.
    mine, theirs = list(api_spans.get_finished_spans()), list(other_spans.get_finished_spans())
    interleaved = [span for pair in zip(mine[:3], theirs[:3], strict=True) for span in pair]
    return interleaved + mine[3:] + theirs[3:]


def _ours(encoder: SpanEncoder, spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encoder.request(spans))


def test_varied_spans_encode_as_upstream_encodes_them() -> None:
    spans = _varied_spans()
    assert len(spans) == 8
    encoder = SpanEncoder()
    expected = encode_spans(spans)
    assert _ours(encoder, spans) == expected
    assert _ours(encoder, spans) == expected  # again, from the attribute cache
    assert len(expected.resource_spans) == 2  # the cases cover the grouping
    assert [len(r.scope_spans) for r in expected.resource_spans] == [2, 1]


def test_each_span_alone_and_an_empty_batch_encode_as_upstream() -> None:
    encoder = SpanEncoder()
    for span in _varied_spans():
        assert _ours(encoder, [span]) == encode_spans([span]), span.name
    assert encoder.request([]) == encode_spans([]).SerializeToString() == b""


def test_an_unencodable_attribute_is_logged_and_skipped_as_upstream_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, memory = _provider(Resource({"service.name": "api"}))
    provider.get_tracer("t").start_span("big", attributes={"huge": 2**64, "ok": "yes"}).end()
    spans = list(memory.get_finished_spans())
    with caplog.at_level(logging.ERROR):
        ours = _ours(SpanEncoder(), spans)
    assert ours == encode_spans(spans)
    assert [kv.key for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes] == ["ok"]
    assert "Failed to encode key huge" in caplog.text


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    status = 200

    def do_POST(self) -> None:
        _Receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(_Receiver.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.bodies, _Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1/traces"
    server.shutdown()
    server.server_close()


def test_the_exporter_posts_what_upstream_would_encode(receiver: str) -> None:
    spans = _varied_spans()
    exporter = SpanExporter(endpoint=receiver)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert [ExportTraceServiceRequest.FromString(b) for b in _Receiver.bodies] == [
        encode_spans(spans)
    ]


def test_the_exporter_reports_a_rejected_or_oversized_batch(receiver: str) -> None:
    spans = _varied_spans()
    _Receiver.status = 400  # not retryable: one attempt
    assert SpanExporter(endpoint=receiver).export(spans) is SpanExportResult.FAILURE
    assert len(_Receiver.bodies) == 1
    tiny = SpanExporter(endpoint=receiver, max_request_size=100)
    assert tiny.export(spans) is SpanExportResult.FAILURE
    assert len(_Receiver.bodies) == 1  # never sent
