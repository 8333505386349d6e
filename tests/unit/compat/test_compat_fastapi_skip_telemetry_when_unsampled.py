"""compat entry fastapi.skip_telemetry_when_unsampled: stock FastAPI enters its
telemetry for every request and asks the `exclude` hook only then; a request
marked by the entry goes straight to the app, and the API's unsampled requests
are marked, keep their trace id, and record nothing, while sampled ones still
get FastAPI's SERVER span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from starlette.types import Receive, Scope, Send

from conveyor.api import tracing
from conveyor.api.compat.fastapi import skip_telemetry
from conveyor.common.trace_ids import PresetTraceIds

asked: list[str] = []  # the paths FastAPI's telemetry asked `exclude` about


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    asked.clear()
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def _provider(ratio: float, exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(ratio)), id_generator=PresetTraceIds()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _telemetry(provider: TracerProvider) -> TelemetryConfig:
    exclude = tracing.telemetry_config()["exclude"]
    assert exclude is not None

    def asking(scope: Any) -> bool:
        asked.append(scope["path"])
        return exclude(scope)

    return TelemetryConfig(
        tracer_provider=provider, operation_spans=False, metrics=False, logs=False, exclude=asking
    )


def _route(app: FastAPI) -> FastAPI:
    @app.get("/v1/jobs")
    async def current_trace() -> dict[str, Any]:
        context = trace.get_current_span().get_span_context()
        return {"valid": context.is_valid, "sampled": context.trace_flags.sampled}

    return app


def _get(app: Any) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.get("/v1/jobs")
        assert response.status_code == 200, response.text
        return dict(response.json())

    return asyncio.run(call())


def test_stock_fastapi_enters_its_telemetry_unless_the_scope_is_marked(
    spans: InMemorySpanExporter,
) -> None:
    app = _route(FastAPI(telemetry=_telemetry(_provider(1.0, spans))))

    async def marking(scope: Scope, receive: Receive, send: Send) -> None:
        skip_telemetry(scope)
        await app(scope, receive, send)

    assert _get(app)["sampled"]
    assert asked == ["/v1/jobs"] and len(spans.get_finished_spans()) == 1
    assert not _get(marking)["valid"]
    assert asked == ["/v1/jobs"] and len(spans.get_finished_spans()) == 1


def _head_sampled_app(
    ratio: float, skip: bool, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    provider = _provider(ratio, spans)
    monkeypatch.setattr(tracing, "tracer_provider", lambda: provider)
    app = _route(tracing.HeadSampledFastAPI(telemetry=_telemetry(provider)))
    app.head_sampling = tracing.HeadSampling(tracing._excluded_urls(), skip)
    return app


def test_unsampled_requests_skip_fastapi_telemetry_and_keep_a_trace_id(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _head_sampled_app(0.0, True, spans, monkeypatch)
    for _ in range(3):
        assert _get(app) == {"valid": True, "sampled": False}
    assert asked == [] and spans.get_finished_spans() == ()


def test_sampled_requests_get_fastapi_server_span(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _head_sampled_app(1.0, True, spans, monkeypatch)
    assert _get(app) == {"valid": True, "sampled": True}
    assert asked == ["/v1/jobs"]
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /v1/jobs" and span.kind is trace.SpanKind.SERVER


def test_declined_unsampled_requests_are_excluded_by_the_hook(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _head_sampled_app(0.0, False, spans, monkeypatch)
    assert _get(app) == {"valid": True, "sampled": False}
    assert asked == ["/v1/jobs"] and spans.get_finished_spans() == ()
