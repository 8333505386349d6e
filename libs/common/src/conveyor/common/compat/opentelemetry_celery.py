"""opentelemetry-instrumentation-celery: a publish span for tasks sent by name.

Upstream behaviour: `CeleryInstrumentor` starts the PRODUCER span in its
`before_task_publish` receiver and ends it in `after_task_publish`, keeping
it on the Task object it finds in `current_app`'s registry. The API and the
scheduler send `conveyor.run_job` by name (`send_task`) and have no such Task:
nothing holds the span's activation, so the span ends when Python collects it,
as soon as the before-publish receiver returns and before the message is sent,
and the after-publish receiver returns early. The publish span then measures
nothing, and a collection at another moment detaches the wrong context.
Anonymous tasks got their span name in open-telemetry/opentelemetry-python-contrib
PR #1407 (issues #609, #1002); ending that span is still missing, and no
upstream issue was found for it.

The entry overrides the instrumentor's private receivers `_trace_before_publish`
and `_trace_after_publish` (public signals cannot stop upstream's own receivers
from running): a task unknown to the registry gets a span kept by task id until
`after_task_publish`, injected into the headers and never made current.

Verified against 0.66b*. Outside that range the stock instrumentor is used
(warning logged): tasks sent by name keep upstream's behaviour above, which
loses no job, only that publish span.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind

from conveyor.common.compat import supported

ENTRY = "opentelemetry_celery.publish_span_by_name"
VERIFIED = ("opentelemetry-instrumentation-celery", "0.66", "0.67")


@functools.cache
def by_name_instrumentor_class() -> type:
    from celery import current_app  # a proxy: imported once, not per publish
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    class CeleryByNameInstrumentor(CeleryInstrumentor):
        """CeleryInstrumentor, plus a publish span that lasts for `send_task` by name."""

        max_in_flight = 1024
        # BaseInstrumentor is a singleton through this class attribute: without
        # our own, a CeleryInstrumentor built first would be returned here.
        _instance = None

        def _instrument(self, **kwargs: Any) -> None:
            self.by_name: OrderedDict[str, Any] = OrderedDict()
            self.by_name_lock = threading.Lock()
            # Registry lookups cost a noticeable share of a submit; an answer
            # of "unregistered" may be kept, since the by-name path also works
            # for a task that registers later.
            self.unregistered_names: set[str] = set()
            super()._instrument(**kwargs)  # type: ignore[no-untyped-call]

        def unregistered(self, kwargs: dict[str, Any]) -> str | None:
            sender = kwargs.get("sender")
            if not isinstance(sender, str):
                return None
            if sender in self.unregistered_names:
                return sender
            if current_app.tasks.get(sender) is None:
                self.unregistered_names.add(sender)
                return sender
            return None

        def _trace_before_publish(self, *args: Any, **kwargs: Any) -> None:
            name = self.unregistered(kwargs)
            if name is None:
                super()._trace_before_publish(*args, **kwargs)  # type: ignore[no-untyped-call]
                return
            headers = kwargs.get("headers") or {}
            task_id = headers.get("id")
            if task_id is None:
                return
            current = trace.get_current_span().get_span_context()
            if current.is_valid and not current.trace_flags.sampled:
                # An unsampled trace (most, with head sampling): the span would
                # not be recorded; the message still carries the trace id.
                inject(headers)
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
            with self.by_name_lock:
                self.by_name[task_id] = span
                while len(self.by_name) > self.max_in_flight:
                    self.by_name.popitem(last=False)

        def _trace_after_publish(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            name = self.unregistered(kwargs)
            if name is None:
                super()._trace_after_publish(*args, **kwargs)  # type: ignore[no-untyped-call]
                return
            task_id = (kwargs.get("headers") or {}).get("id")
            if task_id is None:
                return
            with self.by_name_lock:
                span = self.by_name.pop(task_id, None)
            if span is not None:
                span.end()

    return CeleryByNameInstrumentor


def celery_instrumentor() -> Any:
    """The instrumentor to use: ours within the verified range, else upstream's."""
    if supported(ENTRY, *VERIFIED):
        return by_name_instrumentor_class()()
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    return CeleryInstrumentor()  # type: ignore[no-untyped-call]
