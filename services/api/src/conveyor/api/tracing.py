"""Server spans for the API's HTTP requests (OpenTelemetry's FastAPI instrumentation).

The process's tracer provider comes from `conveyor.common.telemetry.configure_tracing`,
called once by `python -m conveyor.api`; an app built without it (tests that build
apps in-process) is left uninstrumented.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from conveyor.common.telemetry import tracing_active

# Probes and scrapes would be most of the traces, and tell nothing.
# OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) replaces this list.
DEFAULT_EXCLUDED_URLS = "/livez$,/readyz$,/metrics$"


def instrument_app(app: FastAPI) -> None:
    if not tracing_active():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    from_env = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS"
    )
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=None if from_env else DEFAULT_EXCLUDED_URLS,
        # The per-chunk http send/receive spans double the span count and say nothing
        # the server span does not.
        exclude_spans=["receive", "send"],
        # Prometheus carries the metrics (see metrics.py), not OTel.
        meter_provider=NoOpMeterProvider(),
    )
