"""Trace context for the API's HTTP requests.

`python -m conveyor.api` calls `conveyor.common.telemetry.configure_tracing` once;
`create_app` builds a `HeadSampledFastAPI` and calls `instrument_app`, which picks
one of:

- spans exported: FastAPI's native OpenTelemetry (`telemetry_config`, passed
  to `FastAPI(...)`): one SERVER span per sampled request, named after the
  route template, with the stable HTTP semantic conventions; probes and
  /metrics excluded. It replaced opentelemetry-instrumentation-fastapi, which
  scans every route per request to find the template and wraps each send and
  receive: with it, `make bench` saw submits fall 40% with every span exported.
  The head-sampling decision is taken first, before FastAPI sees the request
  (`HeadSampledFastAPI`): an unsampled request, nine in ten by default, runs
  with a non-recording span, as with no exporter, so it still carries its
  trace id to logs and the worker, and skips FastAPI's per-request telemetry
  (conveyor.api.compat.fastapi; where that entry declines, the config's public
  `exclude` hook excludes it instead);
- no exporter: `TraceContextMiddleware`, which only makes the request's W3C
  context current (the caller's `traceparent`, or a freshly minted trace id), so
  log lines and the published task carry a trace id at a cost of microseconds;
- tracing disabled (`OTEL_SDK_DISABLED=true`), or an app built without
  `configure_tracing` (tests that build apps in-process): nothing.
"""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.http import ExcludeList, get_excluded_urls, parse_excluded_urls
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.compat.fastapi import can_skip_telemetry, skip_telemetry
from conveyor.common.telemetry import exporting_spans, propagating_context, tracer_provider
from conveyor.common.trace_ids import decide_server_span

# Probes and scrapes would be most of the traces, and tell nothing.
# OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) replaces this list.
DEFAULT_EXCLUDED_URLS = "/livez$,/readyz$,/metrics$"
# Where `HeadSampledFastAPI` leaves its decision for the `exclude` hook.
HEAD_SAMPLED = "conveyor.head_sampled"


def telemetry_config() -> TelemetryConfig:
    """FastAPI's native OpenTelemetry: server spans only. It does nothing until
    a tracer provider is set, i.e. unless `configure_tracing` exports spans.

    Its per-operation spans (dependencies, endpoint) would double a submit's
    span count; Prometheus carries the metrics (metrics.py) and stdout the logs.
    """
    excluded = _excluded_urls()

    def exclude(scope: Scope) -> bool:
        # An unsampled request skips FastAPI's telemetry before this hook
        # (HeadSampledFastAPI), unless conveyor.api.compat.fastapi declined.
        if scope.get(HEAD_SAMPLED) is False:
            return True
        return bool(excluded.url_disabled(scope.get("path", "")))

    return TelemetryConfig(
        tracing=True,
        operation_spans=False,
        metrics=False,
        logs=False,
        exclude=exclude,
    )


def instrument_app(app: HeadSampledFastAPI) -> None:
    if exporting_spans():
        app.head_sampling = HeadSampling(_excluded_urls(), can_skip_telemetry())
    elif propagating_context():
        app.add_middleware(TraceContextMiddleware)


def _carrier(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


@functools.cache
def _propagated_headers() -> frozenset[bytes]:
    # The header names the configured propagators read (OTEL_PROPAGATORS; by
    # default traceparent, tracestate and baggage), as ASGI spells them.
    fields = propagate.get_global_textmap().fields
    return frozenset(name.lower().encode("latin-1") for name in fields)


def unsampled_context(scope: Scope) -> Context | None:
    """The sampler's decision for this request's SERVER span, taken before FastAPI's
    telemetry, and left in the scope for `exclude`.

    Sampled: None; FastAPI records the span, and a new trace gets the id decided
    on (`decide_server_span`), so the SDK's sampler agrees. Not sampled: the
    request's context (the caller's trace continued, or a new trace id, not
    sampled), to make current while it runs.
    """
    provider = tracer_provider()
    if provider is None:
        return None  # nothing exported: FastAPI's telemetry does nothing anyway
    propagated = _propagated_headers()
    if any(name in propagated for name, _ in scope["headers"]):
        parent_context = propagate.extract(_carrier(scope))
    else:
        parent_context = Context()  # most requests: nothing to continue, skip the parsing
    trace_id, sampled, trace_state = decide_server_span(
        provider, parent_context, scope.get("method", "HTTP")
    )
    scope[HEAD_SAMPLED] = sampled
    if sampled:
        return None
    span = NonRecordingSpan(
        SpanContext(
            trace_id=trace_id,
            span_id=random.getrandbits(64),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
            trace_state=trace_state,
        )
    )
    return trace.set_span_in_context(span, parent_context)


@dataclass(frozen=True)
class HeadSampling:
    excluded: ExcludeList  # probes and scrapes: no decision, no trace
    skip_telemetry: bool  # conveyor.api.compat.fastapi applies


class HeadSampledFastAPI(FastAPI):
    """FastAPI, with the head-sampling decision taken before its telemetry runs.

    `instrument_app` turns it on when spans are exported; until then it is
    FastAPI. A sampled request goes through FastAPI's telemetry, which records
    its SERVER span; an unsampled one runs with its non-recording context
    current and skips that telemetry.
    """

    head_sampling: HeadSampling | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sampling = self.head_sampling
        if (
            sampling is None
            or scope["type"] != "http"
            or sampling.excluded.url_disabled(scope.get("path", ""))
            or (request_context := unsampled_context(scope)) is None
        ):
            await super().__call__(scope, receive, send)
            return
        if sampling.skip_telemetry:
            skip_telemetry(scope)
        token = otel_context.attach(request_context)
        try:
            await super().__call__(scope, receive, send)
        finally:
            otel_context.detach(token)


def _excluded_urls() -> ExcludeList:
    # The OpenTelemetry instrumentation's variables, so its documentation applies.
    if os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS"
    ):
        return get_excluded_urls("FASTAPI")
    return parse_excluded_urls(DEFAULT_EXCLUDED_URLS)


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
        parent_context = propagate.extract(_carrier(scope))
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
