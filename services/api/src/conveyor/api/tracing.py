"""Trace context for the API's HTTP requests.

`python -m conveyor.api` calls `conveyor.common.telemetry.configure_tracing` once;
`create_app` then calls `instrument_app`, which picks one of:

- spans exported: OpenTelemetry's FastAPI instrumentation (server spans named
  after the route template; probes and /metrics excluded);
- no exporter: `TraceContextMiddleware`, which only makes the request's W3C
  context current (the caller's `traceparent`, or a freshly minted trace id), so
  log lines and the published task carry a trace id at a cost of microseconds;
- tracing disabled (`OTEL_SDK_DISABLED=true`), or an app built without
  `configure_tracing` (tests that build apps in-process): nothing.
"""

from __future__ import annotations

import os
import random

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.common.telemetry import exporting_spans, propagating_context

# Probes and scrapes would be most of the traces, and tell nothing.
# OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) replaces this list.
DEFAULT_EXCLUDED_URLS = "/livez$,/readyz$,/metrics$"


def instrument_app(app: FastAPI) -> None:
    if exporting_spans():
        _instrument_fastapi(app)
    elif propagating_context():
        app.add_middleware(TraceContextMiddleware)  # outermost: added last


def _instrument_fastapi(app: FastAPI) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    from_env = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS"
    )
    # With this middleware in the stack, FastAPI's own native telemetry stands down.
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=None if from_env else DEFAULT_EXCLUDED_URLS,
        # The per-chunk http send/receive spans double the span count and say nothing
        # the server span does not.
        exclude_spans=["receive", "send"],
        # Prometheus carries the metrics (see metrics.py), not OTel.
        meter_provider=NoOpMeterProvider(),
    )


class TraceContextMiddleware:
    """Makes a non-recording span current for each request: the caller's trace
    continued (`traceparent`, or whatever OTEL_PROPAGATORS names), or a new one.

    Nothing is recorded or exported; the ids exist for log lines and for the
    `traceparent` the job's task message carries to the worker.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent_context = propagate.extract(carrier)
        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
        else:
            # Not sampled: this process records nothing.
            trace_id, flags, state = random.getrandbits(128), TraceFlags(0), None
        span = NonRecordingSpan(
            SpanContext(
                trace_id=trace_id,
                span_id=random.getrandbits(64),
                is_remote=False,
                trace_flags=flags,
                trace_state=state,
            )
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent_context))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
