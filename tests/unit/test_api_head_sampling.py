"""The API's head-sampling decision, taken before FastAPI's telemetry: an
unsampled request is excluded from it and still carries a trace id; a sampled
new trace gets the very id the decision was taken on, so the SDK's sampler agrees."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from conveyor.api import tracing
from conveyor.common.trace_ids import PresetTraceIds

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": list(headers)}


def _provider(ratio: float, monkeypatch: pytest.MonkeyPatch) -> TracerProvider:
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(ratio)), id_generator=PresetTraceIds()
    )
    monkeypatch.setattr(tracing, "tracer_provider", lambda: provider)
    return provider


def _exclude() -> Any:
    exclude = tracing.telemetry_config()["exclude"]
    assert exclude is not None
    return exclude


def test_unsampled_requests_are_excluded_and_keep_a_trace_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _provider(0.0, monkeypatch)
    scope = _scope()
    request_context = tracing.unsampled_context(scope)
    assert request_context is not None
    span = trace.get_current_span(request_context).get_span_context()
    assert span.is_valid and not span.trace_flags.sampled
    assert _exclude()(scope)  # FastAPI's telemetry, if it sees it, does nothing for it


def test_a_sampled_caller_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    _provider(0.0, monkeypatch)  # parent-based: the caller's decision wins
    scope = _scope((b"traceparent", CALLER.encode()))
    assert tracing.unsampled_context(scope) is None
    assert not _exclude()(scope)


def test_a_sampled_new_trace_gets_the_id_it_was_decided_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = _provider(0.5, monkeypatch)
    tracer = provider.get_tracer("t")
    decided = 0
    for _ in range(200):
        unsampled = tracing.unsampled_context(_scope())
        if unsampled is None:
            decided += 1
            # What FastAPI's telemetry then starts: the SDK samples it too.
            assert tracer.start_span("POST", kind=trace.SpanKind.SERVER).is_recording()
        else:
            span = trace.get_current_span(unsampled)
            assert not span.get_span_context().trace_flags.sampled
    assert 60 <= decided <= 140


def test_probes_are_excluded_without_a_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    _provider(1.0, monkeypatch)
    scope = {**_scope(), "path": "/readyz"}
    assert _exclude()(scope) and tracing.HEAD_SAMPLED not in scope
