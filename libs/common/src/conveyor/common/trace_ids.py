"""Trace ids drawn before their root span, so that a sampling decision taken
early (the API's, before FastAPI's telemetry runs: conveyor.api.tracing) is the
decision the SDK then takes again for the same id: TraceIdRatioBased decides by
the trace id alone."""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind, TraceState

_preset: ContextVar[int | None] = ContextVar("conveyor_preset_trace_id", default=None)


class PresetTraceIds(RandomIdGenerator):
    """Random ids, except the next root span's trace id when one was drawn first."""

    def generate_trace_id(self) -> int:
        preset = _preset.get()
        if preset is None:
            return super().generate_trace_id()
        _preset.set(None)
        return preset


def preset_next_trace_id(trace_id: int) -> None:
    """The next root span started in this context gets `trace_id`."""
    _preset.set(trace_id)


def decide_server_span(
    provider: TracerProvider, parent_context: Context, name: str
) -> tuple[int, bool, TraceState | None]:
    """The trace id a SERVER span started now would get, whether the provider's
    sampler keeps it, and the trace state it returns. A sampled new trace keeps
    that id: the next root span started in this context gets it."""
    parent = trace.get_current_span(parent_context).get_span_context()
    trace_id = parent.trace_id if parent.is_valid else provider.id_generator.generate_trace_id()
    result = provider.sampler.should_sample(parent_context, trace_id, name, SpanKind.SERVER)
    sampled = result.decision is Decision.RECORD_AND_SAMPLE
    if sampled and not parent.is_valid:
        preset_next_trace_id(trace_id)
    return trace_id, sampled, result.trace_state
