"""The fast OTLP span encoder produces exactly the request the OpenTelemetry encoder produces, for every kind of
span the capture makes and for the ones it hands back to the generic encoder."""

from __future__ import annotations

from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from pinnprov.capture.fast_encode import encode_spans_fast


def _spans() -> list:
    exporter = InMemorySpanExporter()
    spans = []
    for resource in (Resource.create({"service.name": "a", "n": 3}), Resource.create({"service.name": "b"})):
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("pinnprov", "1.2.3", schema_url="https://x/1")
        other = provider.get_tracer("other")
        root = tracer.start_span("pinn.run", attributes={"pinn.run.id": "ab" * 16}, start_time=1_000)
        ctx = trace_api.set_span_in_context(root)
        for epoch in range(3):
            tracer.start_span("pinn.epoch", ctx, start_time=2_000 + epoch, attributes={
                "pinn.epoch": epoch, "pinn.loss.total": 0.5 / (epoch + 1), "pinn.epoch.extra.x": -1.5,
                "flag": epoch % 2 == 0, "neg": -7, "big": 2**40, "text": "é ü", "empty": "", "zero": 0.0,
            }).end(3_000 + epoch)
        with_event = tracer.start_span("with.event", ctx)
        with_event.add_event("e", {"k": 1})
        with_event.end()
        tracer.start_span("with.array", ctx, attributes={"xs": (1.0, 2.0)}).end()
        tracer.start_span("with.link", ctx, links=[Link(root.get_span_context(), {"l": "x"})]).end()
        other.start_span("client", ctx, kind=SpanKind.CLIENT).end()
        remote = trace_api.SpanContext(7, 9, is_remote=True, trace_flags=trace_api.TraceFlags(1))
        tracer.start_span("remote.child", trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))).end()
        failing = tracer.start_span("failed", ctx)
        failing.set_status(Status(StatusCode.ERROR, "boom"))
        failing.end()
        root.set_status(Status(StatusCode.OK))
        root.end(9_000)
        provider.force_flush()
        spans += exporter.get_finished_spans()
        exporter.clear()
    return spans


def test_the_fast_encoder_equals_the_generic_one() -> None:
    spans = _spans()
    assert len(spans) > 10
    assert encode_spans_fast(spans) == encode_spans(spans)
    for span in spans:  # one at a time too
        assert encode_spans_fast([span]) == encode_spans([span])
    assert encode_spans_fast([]) == encode_spans([])
