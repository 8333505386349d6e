"""OpenTelemetry tracing for every Conveyor process, configured only by OTEL_* variables.

The standard variables, and nothing Conveyor-specific:

- `OTEL_SERVICE_NAME` (each process passes a default: conveyor-api, conveyor-worker, ...),
  `OTEL_RESOURCE_ATTRIBUTES` (the chart puts k8s.pod.name, k8s.namespace.name and
  k8s.node.name there); `service.version` comes from `APP_VERSION` or the package.
- `OTEL_TRACES_EXPORTER`: `otlp`, `console` (to stderr: stdout carries JSON logs
  only) or `none`. Unset means `otlp` when an OTLP endpoint is set, else `none`.
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._HEADERS`,
  `..._TIMEOUT`, `..._COMPRESSION` (OTLP over HTTP/protobuf), `OTEL_BSP_*`.
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`).
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

import functools
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import signals
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from sqlalchemy import Engine

import conveyor.common
from conveyor.common.trace_context import carry_trace_context

# Every task message carries its publish time (epoch seconds): the worker's
# queue-wait histogram is claim time minus this (or minus the ETA, if later).
PUBLISHED_AT_HEADER = "conveyor_published_at"

_EXPORTERS = ("otlp", "console", "none")
_OTLP_PROTOCOLS = ("http/protobuf",)
_TRUE = "true"


@dataclass
class _State:
    pid: int
    provider: TracerProvider | None  # set only when spans are exported
    propagating: bool  # W3C context is minted and carried (False: OTEL_SDK_DISABLED)


_state: _State | None = None
_lock = threading.Lock()
_instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _exporter_names() -> list[str]:
    raw = _env("OTEL_TRACES_EXPORTER").lower()
    if not raw:
        has_endpoint = _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        return ["otlp"] if has_endpoint else []
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return [n for n in dict.fromkeys(names) if n != "none"]


def tracing_config_errors() -> list[str]:
    """One line per bad OTEL_* variable (empty when all are usable)."""
    errors: list[str] = []
    raw = _env("OTEL_TRACES_EXPORTER").lower()
    unknown = [n.strip() for n in raw.split(",") if n.strip() and n.strip() not in _EXPORTERS]
    if unknown:
        errors.append(
            f"OTEL_TRACES_EXPORTER {', '.join(unknown)} is not supported"
            f" (use {', '.join(_EXPORTERS)})"
        )
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        value = _env(name)
        if value and value not in _OTLP_PROTOCOLS:
            errors.append(
                f"{name} {value} is not supported (only http/protobuf: point it at"
                " the collector's OTLP/HTTP port, usually 4318)"
            )
    sampler = _env("OTEL_TRACES_SAMPLER").lower()
    if sampler and sampler not in sampling._KNOWN_SAMPLERS:
        errors.append(
            f"OTEL_TRACES_SAMPLER {sampler} is not one of"
            f" {', '.join(sorted(sampling._KNOWN_SAMPLERS))}"
        )
    if sampler.endswith("traceidratio") and _env("OTEL_TRACES_SAMPLER_ARG"):
        try:
            ratio = float(_env("OTEL_TRACES_SAMPLER_ARG"))
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            errors.append("OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1")
    return errors


def check_tracing_config() -> None:
    """Stop the process, one line per bad variable, before any work (docs/design.md, "Interfaces").

    A Celery worker calls this in its main process, so that a bad variable does
    not make every prefork child die at birth instead.
    """
    errors = tracing_config_errors()
    if errors:
        for line in errors:
            print(f"config error: {line}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(2)


class _NoOrphanClientSpans(sampling.Sampler):
    """Drops root spans of kind CLIENT, delegates everything else.

    A SQL statement or Redis command with no request or task around it (a probe,
    a lease renewal in its own thread) is noise as a one-span trace.
    """

    def __init__(self, delegate: sampling.Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> sampling.SamplingResult:
        if kind is SpanKind.CLIENT:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                return sampling.SamplingResult(sampling.Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self._delegate.get_description()}}}"


def _resource(default_service_name: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours
    # only fill what those leave out.
    detected = Resource.create({})
    extra: dict[str, str] = {}
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        extra[SERVICE_NAME] = default_service_name
    if SERVICE_VERSION not in detected.attributes:
        extra[SERVICE_VERSION] = _env("APP_VERSION") or conveyor.common.__version__
    return detected.merge(Resource(extra))


def _span_processors(names: list[str]) -> list[Any]:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    processors: list[Any] = []
    for name in names:
        if name == "otlp":
            from conveyor.common.span_export import SpanExporter

            # Upstream's OTLP/HTTP exporter with a cheaper encoder (span_export.py).
            # Endpoint, headers, timeout, compression and OTEL_BSP_* come from the environment.
            processors.append(BatchSpanProcessor(SpanExporter()))
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
    global _state
    with _lock:
        if _state is not None and _state.pid == os.getpid():
            return _state.provider is not None
        check_tracing_config()
        stamp_publish_time()
        if _env("OTEL_SDK_DISABLED").lower() == _TRUE:
            _state = _State(os.getpid(), None, propagating=False)
            return False
        names = _exporter_names()
        if not names:
            # No spans: the publish and run hooks only pass trace ids along.
            carry_trace_context()
            _state = _State(os.getpid(), None, propagating=True)
            return False
        provider = TracerProvider(
            sampler=_NoOrphanClientSpans(sampling._get_from_env_or_default()),
            resource=_resource(default_service_name),
        )
        for processor in _span_processors(names):
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _instrument_celery(provider)
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument(tracer_provider=provider)
        _state = _State(os.getpid(), provider, propagating=True)
        return True


def _forget_after_fork() -> None:
    # A forked child starts unconfigured: its own tracer after the fork
    # (docs/design.md, "Factories").
    global _state
    _state = None


os.register_at_fork(after_in_child=_forget_after_fork)


def _current() -> _State | None:
    # Called on hot paths (every traced statement): the fork hook above keeps
    # this free of a getpid() per call.
    return _state


def exporting_spans() -> bool:
    """True once `configure_tracing` has set up span export in this process."""
    state = _current()
    return state is not None and state.provider is not None


def propagating_context() -> bool:
    """True once `configure_tracing` ran in this process and tracing is not disabled."""
    state = _current()
    return state is not None and state.propagating


def shutdown_tracing() -> None:
    """Flush and stop the exporter. A prefork child calls this on its way out:
    it leaves with os._exit, so atexit handlers never run there."""
    state = _current()
    if state is not None and state.provider is not None:
        state.provider.shutdown()


def instrument_engine(engine: Engine) -> None:
    """Trace this engine's SQL, when this process exports spans (else a no-op).

    db.py's factories call it for every engine they build, so the API's async
    engine (its sync_engine) and each worker child's own engine are covered.
    """
    if not exporting_spans() or engine in _instrumented_engines:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sqla_version
    from opentelemetry.metrics import NoOpMeterProvider

    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", sqla_version)
    # We export Prometheus metrics, not OTel ones: the pool gauge goes nowhere.
    usage = (
        NoOpMeterProvider()
        .get_meter("conveyor")
        .create_up_down_counter("db.client.connections.usage")
    )
    EngineTracer(tracer, engine, usage)  # type: ignore[no-untyped-call]
    _instrumented_engines.add(engine)


# --- Celery -----------------------------------------------------------------


def stamp_publish_time() -> None:
    """Stamp every task message this process publishes with `PUBLISHED_AT_HEADER`."""
    signals.before_task_publish.connect(_add_published_at, weak=False, dispatch_uid=__name__)


def _add_published_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(PUBLISHED_AT_HEADER, round(time.time(), 6))


def _instrument_celery(provider: TracerProvider) -> None:
    from opentelemetry.metrics import NoOpMeterProvider

    _CeleryInstrumentor().instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider())


@functools.cache
def _make_celery_instrumentor() -> type:
    from celery import current_app  # a proxy: imported once, not per publish
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    class CeleryByNameInstrumentor(CeleryInstrumentor):
        """CeleryInstrumentor, plus a publish span that lasts for `send_task` by name.

        Upstream parks the publish span on the Task object it looks up in
        `current_app`'s registry. The API and the scheduler send
        `conveyor.run_job` by name and have no such Task, so upstream's span
        ends (when garbage-collected) before the message is even sent. Here such
        a span is kept by task id until `after_task_publish`. Its context is
        injected into the message headers explicitly and never attached, so a
        publish that raises (no after signal) cannot leave it current.
        """

        _MAX_IN_FLIGHT = 1024

        def _instrument(self, **kwargs: Any) -> None:
            self._by_name: OrderedDict[str, Any] = OrderedDict()
            self._by_name_lock = threading.Lock()
            # Registry lookups cost a noticeable share of a submit; an answer
            # of "unregistered" may be kept, since the by-name path also works
            # for a task that registers later.
            self._unregistered_names: set[str] = set()
            super()._instrument(**kwargs)  # type: ignore[no-untyped-call]

        def _unregistered(self, kwargs: dict[str, Any]) -> str | None:
            sender = kwargs.get("sender")
            if not isinstance(sender, str):
                return None
            if sender in self._unregistered_names:
                return sender
            if current_app.tasks.get(sender) is None:
                self._unregistered_names.add(sender)
                return sender
            return None

        def _trace_before_publish(self, *args: Any, **kwargs: Any) -> None:
            name = self._unregistered(kwargs)
            if name is None:
                super()._trace_before_publish(*args, **kwargs)  # type: ignore[no-untyped-call]
                return
            headers = kwargs.get("headers") or {}
            task_id = headers.get("id")
            if task_id is None:
                return
            span = self._tracer.start_span(
                f"apply_async/{name}",
                kind=SpanKind.PRODUCER,
                attributes={
                    "celery.action": "apply_async",
                    "celery.task_name": name,
                    "messaging.system": "celery",
                    "messaging.message.id": task_id,
                    "messaging.destination.name": str(kwargs.get("routing_key") or ""),
                },
            )
            inject(headers, context=trace.set_span_in_context(span))
            with self._by_name_lock:
                self._by_name[task_id] = span
                while len(self._by_name) > self._MAX_IN_FLIGHT:
                    self._by_name.popitem(last=False)

        def _trace_after_publish(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            name = self._unregistered(kwargs)
            if name is None:
                super()._trace_after_publish(*args, **kwargs)  # type: ignore[no-untyped-call]
                return
            task_id = (kwargs.get("headers") or {}).get("id")
            if task_id is None:
                return
            with self._by_name_lock:
                span = self._by_name.pop(task_id, None)
            if span is not None:
                span.end()

    return CeleryByNameInstrumentor


def _CeleryInstrumentor() -> Any:
    # Defined lazily: the celery instrumentation is imported only when tracing is on.
    return _make_celery_instrumentor()()
