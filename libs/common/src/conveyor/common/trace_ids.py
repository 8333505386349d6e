"""Trace ids drawn before their root span, so that a sampling decision taken
early (the API's, before FastAPI's telemetry runs: conveyor.api.tracing) is the
decision the SDK then takes again for the same id: TraceIdRatioBased decides by
the trace id alone."""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

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
