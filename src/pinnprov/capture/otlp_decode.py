"""OTLP ExportTraceServiceRequest -> SDK ReadableSpans: the inverse of the exporter's `encode_spans`.

Why: the spooling exporter keeps what it could not deliver as encoded OTLP (compact, replayable by any
OTLP client, readable by `pinnprov flush`), but replays it through the wrapped SpanExporter, which takes
ReadableSpans. Everything `encode_spans` writes comes back: ids, parent, kind, status, times, attributes,
events, links, trace state, resource and instrumentation scope; so re-encoding gives the same request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

_REMOTE_FLAG = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":  # the SDK has no map attributes: keep the content as JSON text
        return json.dumps({kv.key: _value(kv.value) for kv in value.kvlist_value.values}, default=str)
    if kind is None:
        return None
    return getattr(value, kind)


def _attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: value for kv in items if (value := _value(kv.value)) is not None}


def _context(trace_id: bytes, span_id: bytes, flags: int, trace_state: str = "") -> SpanContext:
    return SpanContext(
        int.from_bytes(trace_id, "big"),
        int.from_bytes(span_id, "big"),
        is_remote=bool(flags & _REMOTE_FLAG),
        trace_flags=TraceFlags(flags & 0xFF),
        trace_state=TraceState.from_header([trace_state]) if trace_state else None,
    )


def decode_spans(request: ExportTraceServiceRequest) -> list[ReadableSpan]:
    spans: list[ReadableSpan] = []
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes), resource_spans.schema_url or None)
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(
                scope_spans.scope.name,
                scope_spans.scope.version or None,
                scope_spans.schema_url or None,
                _attributes(scope_spans.scope.attributes) or None,
            )
            for span in scope_spans.spans:
                parent = (
                    _context(span.trace_id, span.parent_span_id, span.flags) if span.parent_span_id else None
                )
                code = StatusCode(span.status.code)
                spans.append(
                    ReadableSpan(
                        name=span.name,
                        context=_context(span.trace_id, span.span_id, span.flags, span.trace_state),
                        parent=parent,
                        resource=resource,
                        attributes=_attributes(span.attributes),
                        events=[Event(e.name, _attributes(e.attributes), e.time_unix_nano) for e in span.events],
                        links=[
                            Link(_context(link.trace_id, link.span_id, link.flags, link.trace_state),
                                 _attributes(link.attributes))
                            for link in span.links
                        ],
                        kind=SpanKind(max(span.kind - 1, 0)),  # OTLP counts UNSPECIFIED as 0
                        status=Status(code, span.status.message if code is StatusCode.ERROR else None),
                        start_time=span.start_time_unix_nano,
                        end_time=span.end_time_unix_nano,
                        instrumentation_scope=scope,
                    )
                )
    return spans
