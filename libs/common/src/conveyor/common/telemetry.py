"""OpenTelemetry tracing for every Conveyor process, configured only by OTEL_* variables.

The standard variables, and nothing Conveyor-specific:

- `OTEL_SERVICE_NAME` (each process passes a default: conveyor-api, conveyor-worker, ...),
  `OTEL_RESOURCE_ATTRIBUTES` (the chart puts k8s.pod.name, k8s.namespace.name and
  k8s.node.name there); `service.version` comes from `APP_VERSION` or the package.
- `OTEL_TRACES_EXPORTER`: `otlp`, `console` (to stderr: stdout carries JSON logs
  only) or `none`. Unset means `otlp` when an OTLP endpoint is set, else `none`.
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._HEADERS`,
  `..._TIMEOUT`, `..._COMPRESSION` (OTLP over HTTP/protobuf, OpenTelemetry's own
  exporter behind the SDK's BatchSpanProcessor), `OTEL_BSP_*`.
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: default `parentbased_traceidratio`
  at 0.1 (tracing_config.py says why).
- `OTEL_SDK_DISABLED=true` turns everything off, trace ids in logs included.

With no exporter (`none`, the default without an endpoint) no tracer provider is
set at all: every instrumentation runs OpenTelemetry's no-op tracer, no span is
created or recorded, and no processor or exporter thread exists. Only the W3C
context still travels: the API mints a trace id per request (or continues the
caller's `traceparent`) in a few microseconds, and Celery's hooks carry it in the
task headers, so the API's and the worker's log lines for one job share a
`trace_id` even without a collector. SQLAlchemy and Redis are instrumented only
when spans are exported.

SQL and Redis calls made outside any request or task (readiness probes, lease
renewals, the reconciler's scans) never start a trace of their own: a root span of
kind CLIENT is dropped, whatever the configured sampler says.

A Celery prefork child calls `configure_tracing` after the fork (docs/design.md, "Factories"): the
parent never sets a tracer provider, so nothing is inherited across the fork.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine

from conveyor.common.compat.opentelemetry_celery import celery_instrumentor
from conveyor.common.publish_time import PUBLISHED_AT_HEADER, stamp_publish_time
from conveyor.common.trace_context import carry_trace_context
from conveyor.common.trace_ids import PresetTraceIds
from conveyor.common.tracing_config import (
    NoOrphanClientSpans,
    check_tracing_config,
    env,
    exporter_names,
    sampler_from_env,
    service_resource,
)

__all__ = [
    "PUBLISHED_AT_HEADER",
    "check_tracing_config",
    "configure_tracing",
    "exporting_spans",
    "instrument_engine",
    "propagating_context",
    "shutdown_tracing",
    "stamp_publish_time",
    "tracer_provider",
]


@dataclass
class TracingState:
    pid: int
    provider: TracerProvider | None  # set only when spans are exported
    propagating: bool  # W3C context is minted and carried (False: OTEL_SDK_DISABLED)


state: TracingState | None = None
lock = threading.Lock()
instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def span_processors(names: list[str]) -> list[Any]:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    processors: list[Any] = []
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Endpoint, headers, timeout, compression and OTEL_BSP_* come from the environment.
            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            processors.append(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return processors


def configure_tracing(default_service_name: str) -> bool:
    """Set up tracing for this process from the OTEL_* variables. Returns True
    when spans are exported.

    Exporting: an SDK tracer provider (resource, sampler, batch exporter), and
    Celery and Redis instrumented (SQLAlchemy per engine, see `instrument_engine`).
    Not exporting: no provider; Celery's hooks still carry the W3C context.
    Idempotent per process. Also stamps every task message this process
    publishes with `PUBLISHED_AT_HEADER`.
    """
    global state
    with lock:
        if state is not None and state.pid == os.getpid():
            return state.provider is not None
        check_tracing_config()
        stamp_publish_time()
        if env("OTEL_SDK_DISABLED").lower() == "true":
            state = TracingState(os.getpid(), None, propagating=False)
            return False
        names = exporter_names()
        if not names:
            # No spans: the publish and run hooks only pass trace ids along.
            carry_trace_context()
            state = TracingState(os.getpid(), None, propagating=True)
            return False
        provider = TracerProvider(
            sampler=NoOrphanClientSpans(sampler_from_env()),
            resource=service_resource(default_service_name),
            id_generator=PresetTraceIds(),
        )
        for processor in span_processors(names):
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        # Prometheus carries the metrics: the instrumentations' OTel metrics go nowhere.
        celery_instrumentor().instrument(
            tracer_provider=provider, meter_provider=NoOpMeterProvider()
        )
        RedisInstrumentor().instrument(tracer_provider=provider)
        state = TracingState(os.getpid(), provider, propagating=True)
        return True


def forget_after_fork() -> None:
    # A forked child starts unconfigured: its own tracer after the fork
    # (docs/design.md, "Factories").
    global state
    state = None


os.register_at_fork(after_in_child=forget_after_fork)


def tracer_provider() -> TracerProvider | None:
    """This process's SDK provider, when it exports spans."""
    current = state
    return None if current is None else current.provider


def exporting_spans() -> bool:
    """True once `configure_tracing` has set up span export in this process."""
    # Called on hot paths (every traced statement): the fork hook above keeps
    # this free of a getpid() per call.
    current = state
    return current is not None and current.provider is not None


def propagating_context() -> bool:
    """True once `configure_tracing` ran in this process and tracing is not disabled."""
    current = state
    return current is not None and current.propagating


def shutdown_tracing() -> None:
    """Flush and stop the exporter. A prefork child calls this on its way out:
    it exits without running atexit handlers."""
    current = state
    if current is not None and current.provider is not None:
        current.provider.shutdown()


def instrument_engine(engine: Engine) -> None:
    """Trace this engine's SQL, when this process exports spans (else a no-op).

    db.py's factories call it for every engine they build, so the API's async
    engine (its sync_engine) and each worker child's own engine are covered.
    The instrumentor is a singleton that takes its engines in one call, so a
    second engine re-instruments with all of them (engines are built once per
    process, never per request).
    """
    if not exporting_spans() or engine in instrumented_engines:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    instrumented_engines.add(engine)
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(
        engines=list(instrumented_engines),
        tracer_provider=trace.get_tracer_provider(),
        meter_provider=NoOpMeterProvider(),
    )
