"""The OTEL_* variables Conveyor reads, checked once at start-up, and what they build:
the exporter names, the sampler and the resource (see telemetry.py for the whole list).

Sampling defaults to `parentbased_traceidratio` at 0.1 when `OTEL_TRACES_SAMPLER`
is unset, and a ratio sampler without `OTEL_TRACES_SAMPLER_ARG` samples 0.1 too:
the SDK's own default, every trace, costs the API about a quarter of its submit
rate (bench/results.json, `tracing`). A caller's sampled `traceparent` is still
followed (parent-based), so a trace someone asked for stays whole.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

import conveyor.common

EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOLS = ("http/protobuf",)
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_RATIO = 0.1


def env(name: str) -> str:
    return os.environ.get(name, "").strip()


def exporter_names() -> list[str]:
    raw = env("OTEL_TRACES_EXPORTER").lower()
    if not raw:
        has_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT") or env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        return ["otlp"] if has_endpoint else []
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return [n for n in dict.fromkeys(names) if n != "none"]


def _ratio() -> float:
    raw = env("OTEL_TRACES_SAMPLER_ARG")
    return float(raw) if raw else DEFAULT_RATIO


def tracing_config_errors() -> list[str]:
    """One line per bad OTEL_* variable (empty when all are usable)."""
    errors: list[str] = []
    raw = env("OTEL_TRACES_EXPORTER").lower()
    unknown = [n.strip() for n in raw.split(",") if n.strip() and n.strip() not in EXPORTERS]
    if unknown:
        errors.append(
            f"OTEL_TRACES_EXPORTER {', '.join(unknown)} is not supported"
            f" (use {', '.join(EXPORTERS)})"
        )
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        value = env(name)
        if value and value not in OTLP_PROTOCOLS:
            errors.append(
                f"{name} {value} is not supported (only http/protobuf: point it at"
                " the collector's OTLP/HTTP port, usually 4318)"
            )
    sampler = env("OTEL_TRACES_SAMPLER").lower() or DEFAULT_SAMPLER
    if sampler not in SAMPLERS:
        errors.append(f"OTEL_TRACES_SAMPLER {sampler} is not one of {', '.join(SAMPLERS)}")
    if sampler.endswith("traceidratio"):
        try:
            ratio = _ratio()
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


def sampler_from_env() -> sampling.Sampler:
    """The sampler OTEL_TRACES_SAMPLER / _ARG name, built from the SDK's public classes."""
    name = env("OTEL_TRACES_SAMPLER").lower() or DEFAULT_SAMPLER
    if name.endswith("traceidratio"):
        ratio: sampling.Sampler = sampling.TraceIdRatioBased(_ratio())
        return sampling.ParentBased(ratio) if name.startswith("parentbased") else ratio
    fixed = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
    }
    return fixed[name]


class NoOrphanClientSpans(sampling.Sampler):
    """Drops root spans of kind CLIENT, delegates everything else.

    A SQL statement or Redis command with no request or task around it (a probe,
    a lease renewal in its own thread) is noise as a one-span trace.
    """

    def __init__(self, delegate: sampling.Sampler) -> None:
        self.delegate = delegate

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
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.delegate.get_description()}}}"


def service_resource(default_service_name: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours
    # only fill what those leave out.
    detected = Resource.create({})
    extra: dict[str, str] = {}
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        extra[SERVICE_NAME] = default_service_name
    if SERVICE_VERSION not in detected.attributes:
        extra[SERVICE_VERSION] = env("APP_VERSION") or conveyor.common.__version__
    return detected.merge(Resource(extra))
