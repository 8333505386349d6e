"""The tracing setup's pieces, in-process: OTEL_* validation, the resource, the
sampler and the worker's hooks (Celery's publish span for tasks sent by name:
tests/unit/compat).

configure_tracing itself (a process-wide tracer provider) is exercised by the
integration tests, in real processes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import SpanKind

from conveyor.common import telemetry, tracing_config
from conveyor.common.tasks import RUN_JOB_TASK
from conveyor.worker import log_context
from conveyor.worker import metrics as worker_metrics


@pytest.fixture
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "APP_VERSION":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
    ],
)
def test_exporter_defaults_follow_the_endpoint(clean_otel_env, env, expected) -> None:  # type: ignore[no-untyped-def]
    for key, value in env.items():
        clean_otel_env.setenv(key, value)
    assert tracing_config.exporter_names() == expected


def test_bad_otel_variables_are_named_one_per_line(clean_otel_env) -> None:  # type: ignore[no-untyped-def]
    clean_otel_env.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    clean_otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    clean_otel_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    clean_otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "2")
    errors = tracing_config.tracing_config_errors()
    assert [e.split()[0] for e in errors] == [
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_SAMPLER_ARG",
    ]
    with pytest.raises(SystemExit) as stopped:
        telemetry.check_tracing_config()
    assert stopped.value.code == 2


def test_good_otel_variables_pass(clean_otel_env) -> None:  # type: ignore[no-untyped-def]
    clean_otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    clean_otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    clean_otel_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    clean_otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert tracing_config.tracing_config_errors() == []


def test_resource_defaults_yield_to_the_environment(clean_otel_env) -> None:  # type: ignore[no-untyped-def]
    import conveyor.common

    resource = tracing_config.service_resource("conveyor-api").attributes
    assert resource["service.name"] == "conveyor-api"
    assert resource["service.version"] == conveyor.common.__version__

    clean_otel_env.setenv("OTEL_SERVICE_NAME", "custom")
    clean_otel_env.setenv("APP_VERSION", "1.2.3")
    clean_otel_env.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=api-7f9c,k8s.namespace.name=prod"
    )
    resource = tracing_config.service_resource("conveyor-api").attributes
    assert resource["service.name"] == "custom"
    assert resource["service.version"] == "1.2.3"
    assert resource["k8s.pod.name"] == "api-7f9c"
    assert resource["k8s.namespace.name"] == "prod"


def test_sampler_drops_orphan_client_spans_only() -> None:
    sampler = tracing_config.NoOrphanClientSpans(ALWAYS_ON)
    tracer = TracerProvider(sampler=sampler).get_tracer("t")
    assert not tracer.start_span("SELECT 1", kind=SpanKind.CLIENT).is_recording()
    root = tracer.start_span("POST /v1/jobs", kind=SpanKind.SERVER)
    assert root.is_recording()
    child = tracer.start_span(
        "UPDATE jobs", kind=SpanKind.CLIENT, context=trace.set_span_in_context(root)
    )
    assert child.is_recording()
    assert tracer.start_span("apply_async/x", kind=SpanKind.PRODUCER).is_recording()
    dropped = sampler.should_sample(None, 1, "GET", kind=SpanKind.CLIENT)
    assert dropped.decision is Decision.DROP


def test_job_id_filter_names_the_job_on_celerys_lines() -> None:
    record = logging.LogRecord("celery.worker.strategy", logging.INFO, "", 0, "x", None, None)
    record.data = {"name": RUN_JOB_TASK, "args": "['3091c454-dc71-4f2e-8f3e-2100f71fbfe2']"}
    assert log_context.JobIdFromTaskArgs().filter(record)
    assert record.job_id == "3091c454-dc71-4f2e-8f3e-2100f71fbfe2"
    other = logging.LogRecord("celery.worker.strategy", logging.INFO, "", 0, "x", None, None)
    other.data = {"name": "celery.ping", "args": "['3091c454-dc71-4f2e-8f3e-2100f71fbfe2']"}
    log_context.JobIdFromTaskArgs().filter(other)
    assert not hasattr(other, "job_id")


def test_queue_wait_counts_from_publish_or_from_a_later_eta() -> None:
    now = time.time()
    request = SimpleNamespace(**{telemetry.PUBLISHED_AT_HEADER: now - 3, "eta": None})
    assert worker_metrics.published_at(SimpleNamespace(request=request)) == pytest.approx(now - 3)  # type: ignore[arg-type]
    eta = datetime.fromtimestamp(now - 1, UTC)
    request.eta = eta.isoformat()
    assert worker_metrics.published_at(SimpleNamespace(request=request)) == pytest.approx(now - 1)  # type: ignore[arg-type]
    request.eta = (eta - timedelta(seconds=10)).isoformat()  # an ETA before the publish
    assert worker_metrics.published_at(SimpleNamespace(request=request)) == pytest.approx(now - 3)  # type: ignore[arg-type]
    assert worker_metrics.published_at(SimpleNamespace(request=SimpleNamespace())) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("succeeded", "succeeded"), ("failed", "failed"), ("queued", "retry"), (None, "lost")],
)
def test_finished_status_names(outcome, status) -> None:  # type: ignore[no-untyped-def]
    metric = worker_metrics.worker_metrics().jobs_finished
    before = metric.labels("sleep", status)._value.get()
    worker_metrics.job_finished("sleep", outcome, 0.01)
    assert metric.labels("sleep", status)._value.get() == before + 1


def _run_asgi(app: Any, headers: list[tuple[bytes, bytes]]) -> None:
    import asyncio

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(app(scope, receive, send))


def test_without_an_exporter_the_api_continues_or_mints_a_trace() -> None:
    from conveyor.api.tracing import TraceContextMiddleware

    seen: list[trace.SpanContext] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())

    app = TraceContextMiddleware(endpoint)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    _run_asgi(app, [(b"traceparent", caller.encode())])
    _run_asgi(app, [])
    _run_asgi(app, [])
    continued, minted, minted_again = seen
    assert format(continued.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(continued.span_id, "016x") != "b7ad6b7169203331"  # our own span id
    assert continued.trace_flags.sampled
    assert minted.is_valid and not minted.trace_flags.sampled
    assert minted.trace_id != minted_again.trace_id
    assert not trace.get_current_span().get_span_context().is_valid  # detached afterwards


@pytest.mark.parametrize(
    ("env", "description"),
    [
        ({}, "ParentBased{root:TraceIdRatioBased{0.1}"),
        ({"OTEL_TRACES_SAMPLER_ARG": "0.5"}, "ParentBased{root:TraceIdRatioBased{0.5}"),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, "AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "ParentBased{root:AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio"}, "TraceIdRatioBased{0.1}"),
    ],
)
def test_head_sampling_defaults_to_one_trace_in_ten(clean_otel_env, env, description) -> None:  # type: ignore[no-untyped-def]
    for key, value in env.items():
        clean_otel_env.setenv(key, value)
    assert tracing_config.tracing_config_errors() == []
    assert tracing_config.sampler_from_env().get_description().startswith(description)


def test_one_in_ten_root_traces_is_sampled_by_default(clean_otel_env) -> None:  # type: ignore[no-untyped-def]
    tracer = TracerProvider(sampler=tracing_config.sampler_from_env()).get_tracer("t")
    sampled = sum(tracer.start_span("POST /v1/jobs").is_recording() for _ in range(5000))
    assert 350 <= sampled <= 650


def test_unknown_sampler_is_a_config_error(clean_otel_env) -> None:  # type: ignore[no-untyped-def]
    clean_otel_env.setenv("OTEL_TRACES_SAMPLER", "jaeger_remote")
    assert [e.split()[0] for e in tracing_config.tracing_config_errors()] == ["OTEL_TRACES_SAMPLER"]


def test_sql_spans_only_inside_a_recorded_span(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from conveyor.common import sql_spans

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(sql_spans, "exporting_spans", lambda: True)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    attributes = sql_spans.statement_attributes("SELECT 1")
    with sql_spans.sql_span("t", "SELECT", attributes):
        pass  # no request around it
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t")
    with unsampled.start_as_current_span("unsampled"), sql_spans.sql_span("t", "S", attributes):
        pass
    assert exporter.get_finished_spans() == ()
    sampled = provider.get_tracer("t")
    with sampled.start_as_current_span("request"), sql_spans.sql_span("t", "SELECT", attributes):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["SELECT", "request"]
