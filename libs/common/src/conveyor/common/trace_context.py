"""Trace context carried through Celery messages when no span is exported.

With no exporter there is nothing to record, but the API's and the worker's log
lines for one job must still share a trace id (docs/operate/observability.md). These
hooks do only that carrying: the publisher's current W3C context goes into the
message headers, and the task runs with it attached, so `trace_id`/`span_id` in
the worker's lines are the publisher's. OpenTelemetry's Celery instrumentation
does the same by starting a no-op span around every publish and run, at several
times the cost on the worker's per-job path.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from celery import signals
from opentelemetry import context, propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

# task id -> token of the context attached while that task runs
_attached: dict[str, Token[Context]] = {}


class _RequestGetter(Getter[Any]):
    """Celery copies a message's headers onto `task.request` as attributes."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Any) -> list[str]:
        return []


_GETTER = _RequestGetter()


def _inject(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        propagate.inject(headers)


def _attach(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is not None and task is not None:
        extracted = propagate.extract(task.request, getter=_GETTER)
        _attached[task_id] = context.attach(extracted)


def _detach(task_id: str | None = None, **_: Any) -> None:
    token = _attached.pop(task_id, None) if task_id is not None else None
    if token is not None:
        context.detach(token)


def carry_trace_context() -> None:
    """Connect the hooks (idempotent): publish in any process, run in a worker child."""
    signals.before_task_publish.connect(_inject, weak=False, dispatch_uid=f"{__name__}.inject")
    signals.task_prerun.connect(_attach, weak=False, dispatch_uid=f"{__name__}.attach")
    signals.task_postrun.connect(_detach, weak=False, dispatch_uid=f"{__name__}.detach")
