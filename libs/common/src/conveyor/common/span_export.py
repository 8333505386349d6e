"""OTLP/HTTP span export with a cheaper encoder.

Upstream's `OTLPSpanExporter` builds a protobuf object per span, attribute and
value before serialising them: 43 µs a span in the API under load, in the
exporting process and on its GIL, a sixth of an untraced submit for its three
spans (`make bench`, tracing.drop).

`SpanEncoder.request` writes the same `ExportTraceServiceRequest` straight to
the protobuf wire format (15 µs a span there) and keeps the bytes of each
attribute pair it has seen (`http.request.method=POST`, `db.system=postgresql`,
...), which repeat from span to span. Anything less common (events, links,
status descriptions, array or mapping values, out-of-range integers) goes
through upstream's encoding functions piece by piece, so the output always
means what upstream's means; tests/unit/test_span_export.py parses both and
compares them.

`SpanExporter` is upstream's exporter with only the encoding swapped: endpoint,
headers, compression, timeout, retries and size limit are all upstream's.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any, TypeVar

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_attributes,
    _encode_instrumentation_scope,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
    _SPAN_KIND_MAP,
    _encode_events,
    _encode_links,
    _encode_trace_state,
    _span_flags,
)
from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64 = 2**64 - 1
_CACHE_LIMIT = 4096  # distinct attribute pairs (and span names) kept; cleared when full
K = TypeVar("K")

_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


# Field tags (field number << 3 | wire type) of the OTLP messages written here.
_REQUEST_RESOURCE_SPANS = b"\x0a"
_RESOURCE, _SCOPE_SPANS, _SCHEMA_URL = b"\x0a", b"\x12", b"\x1a"
_SCOPE, _SPANS = b"\x0a", b"\x12"
_KEY, _VALUE = b"\x0a", b"\x12"
_STRING, _BOOL, _INT, _DOUBLE = b"\x0a", b"\x10", b"\x18", b"\x21"
_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT_SPAN_ID = b"\x0a\x10", b"\x12\x08", b"\x1a", b"\x22\x08"
_NAME, _KIND, _START, _END = b"\x2a", b"\x30", b"\x39", b"\x41"
_ATTRIBUTE, _DROPPED_ATTRIBUTES, _EVENT, _DROPPED_EVENTS = b"\x4a", b"\x50", b"\x5a", b"\x60"
_LINK, _DROPPED_LINKS, _STATUS, _FLAGS = b"\x6a", b"\x70", b"\x7a", b"\x85\x01"
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"


def _any_value(value: Any) -> bytes | None:
    """The AnyValue of a plain scalar, or None for upstream to encode."""
    kind = type(value)
    if kind is str:
        return _field(_STRING, value.encode("utf-8"))
    if kind is bool:
        return _BOOL + (b"\x01" if value else b"\x00")
    if kind is int and _INT64_MIN <= value <= _INT64_MAX:
        return _INT + _varint(value & _UINT64)
    if kind is float:
        return _DOUBLE + _pack_double(value)
    return None


def _upstream_key_values(key: str, value: Any) -> bytes:
    # Upstream logs and skips an attribute it cannot encode; so does this.
    return b"".join(
        _field(_ATTRIBUTE, kv.SerializeToString()) for kv in _encode_attributes({key: value})
    )


def _messages(tag: bytes, messages: Sequence[Any] | None) -> bytes:
    return b"".join(_field(tag, m.SerializeToString()) for m in messages or ())


def _remember(cache: dict[K, bytes], key: K, encoded: bytes) -> bytes:
    """Keeps `encoded` under `key`, emptying the cache first when it is full."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = encoded
    return encoded


class _Canonical:
    """Maps each object to the first equal one seen, by identity first.

    Upstream groups spans by resource and by scope in dicts; Resource hashes by
    dumping its attributes to JSON, which would cost more than a span here.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, int] = {}
        self.items: list[Any] = []

    def index(self, item: Any) -> int:
        found = self._by_id.get(id(item))
        if found is None:
            found = next((i for i, seen in enumerate(self.items) if seen == item), None)
            if found is None:
                found = len(self.items)
                self.items.append(item)
            self._by_id[id(item)] = found
        return found


class SpanEncoder:
    """Encodes span batches; keeps the bytes of attribute pairs it has seen."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, Any], bytes] = {}
        self._names: dict[str, bytes] = {}

    def _attribute(self, key: str, value: Any) -> bytes:
        cache_key = (key, type(value), value)
        try:
            return self._attributes[cache_key]
        except (KeyError, TypeError):  # TypeError: an unhashable value
            pass
        any_value = _any_value(value)
        if any_value is None:
            return _upstream_key_values(key, value)
        encoded = _field(_ATTRIBUTE, _field(_KEY, key.encode("utf-8")) + _field(_VALUE, any_value))
        return _remember(self._attributes, cache_key, encoded)

    def _name(self, name: str) -> bytes:
        encoded = self._names.get(name)
        if encoded is None:
            encoded = _remember(self._names, name, _field(_NAME, name.encode("utf-8")))
        return encoded

    def span(self, span: ReadableSpan) -> bytes:
        context = span.get_span_context()
        assert context is not None  # an SDK span always has one
        parent = span.parent
        parts = [_TRACE_ID, context.trace_id.to_bytes(16, "big"), _SPAN_ID]
        parts.append(context.span_id.to_bytes(8, "big"))
        trace_state = _encode_trace_state(context.trace_state)
        if trace_state:
            parts.append(_field(_TRACE_STATE, trace_state.encode("utf-8")))
        if parent:
            parts += (_PARENT_SPAN_ID, parent.span_id.to_bytes(8, "big"))
        parts += (self._name(span.name), _KIND, _varint(_SPAN_KIND_MAP[span.kind]))
        if span.start_time is not None:
            parts += (_START, _pack_fixed64(span.start_time))
        if span.end_time is not None:
            parts += (_END, _pack_fixed64(span.end_time))
        for key, value in (span.attributes or {}).items():
            parts.append(self._attribute(key, value))
        if span.dropped_attributes:
            parts += (_DROPPED_ATTRIBUTES, _varint(span.dropped_attributes))
        if span.events:
            parts.append(_messages(_EVENT, _encode_events(span.events)))
        if span.dropped_events:
            parts += (_DROPPED_EVENTS, _varint(span.dropped_events))
        if span.links:
            parts.append(_messages(_LINK, _encode_links(span.links)))
        if span.dropped_links:
            parts += (_DROPPED_LINKS, _varint(span.dropped_links))
        parts.append(_field(_STATUS, self._status(span)))
        parts += (_FLAGS, _pack_fixed32(_span_flags(parent)))
        return b"".join(parts)

    @staticmethod
    def _status(span: ReadableSpan) -> bytes:
        status = span.status
        code = status.status_code.value
        body = _field(_STATUS_MESSAGE, status.description.encode()) if status.description else b""
        return body + (_STATUS_CODE + _varint(code) if code else b"")

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The serialised ExportTraceServiceRequest for these spans, grouped by
        resource and then by instrumentation scope, in order of first appearance."""
        resources, scopes = _Canonical(), _Canonical()
        grouped: dict[int, dict[int, list[bytes]]] = {}
        for span in spans:
            by_scope = grouped.setdefault(resources.index(span.resource), {})
            by_scope.setdefault(scopes.index(span.instrumentation_scope), []).append(
                _field(_SPANS, self.span(span))
            )
        out = []
        for resource_index, by_scope in grouped.items():
            resource: Resource = resources.items[resource_index]
            body = [_field(_RESOURCE, _encode_resource(resource).SerializeToString())]
            for scope_index, encoded_spans in by_scope.items():
                body.append(
                    _field(
                        _SCOPE_SPANS, self._scope_spans(scopes.items[scope_index], encoded_spans)
                    )
                )
            if resource.schema_url:
                body.append(_field(_SCHEMA_URL, resource.schema_url.encode("utf-8")))
            out.append(_field(_REQUEST_RESOURCE_SPANS, b"".join(body)))
        return b"".join(out)

    @staticmethod
    def _scope_spans(scope: InstrumentationScope | None, encoded_spans: list[bytes]) -> bytes:
        encoded_scope = _encode_instrumentation_scope(scope)  # type: ignore[arg-type]
        parts = [_field(_SCOPE, encoded_scope.SerializeToString()), *encoded_spans]
        if scope is not None and scope.schema_url:
            parts.append(_field(_SCHEMA_URL, scope.schema_url.encode("utf-8")))
        return b"".join(parts)


class SpanExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` encoding with `SpanEncoder`; the rest of `export` is
    upstream's, step for step (its metrics, size limit and HTTP client)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = self._encoder.request(spans)
            except Exception as error:  # upstream's contract: log, report, never raise
                _logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(serialized, self._max_request_size):
                _logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds"
                    " max_request_size %d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds"
                    f" max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(serialized)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                    if sent.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
