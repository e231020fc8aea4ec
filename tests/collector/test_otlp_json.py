"""OTLP/JSON per the spec: hex ids (not proto3's base64), lowerCamelCase, unknown fields ignored."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prov_builders import request_for, sample_run

from pinnprov.collector.receivers import otlp_json


def test_round_trip_keeps_every_field_and_writes_hex_ids() -> None:
    request = request_for(sample_run(9, epochs=3))
    data = otlp_json.to_dict(request)
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == f"{9:032x}"
    assert len(span["spanId"]) == 16 and int(span["spanId"], 16)
    assert "startTimeUnixNano" in span  # lowerCamelCase
    parsed = otlp_json.parse(otlp_json.dumps(request), ExportTraceServiceRequest())
    assert parsed == request


def test_spec_example_shape_parses() -> None:
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [{
                "scope": {"name": "pinnprov"},
                "spans": [{
                    "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                    "parentSpanId": "EEE19B7EC3C1B173", "name": "pinn.epoch", "kind": 1,
                    "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
                    "attributes": [{"key": "pinn.epoch", "value": {"intValue": "3"}},
                                   {"key": "blob", "value": {"bytesValue": "AAEC"}}],
                    "status": {"code": 2, "message": "boom"},
                    "someFutureField": {"ignored": True},
                }],
            }],
        }]
    }
    request = otlp_json.parse(json.dumps(body).encode(), ExportTraceServiceRequest())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.parent_span_id.hex() == "eee19b7ec3c1b173"
    assert span.attributes[0].value.int_value == 3
    assert span.attributes[1].value.bytes_value == b"\x00\x01\x02"  # bytes values stay base64
    assert span.end_time_unix_nano == 1544712661000000000 and span.status.code == 2


def test_metrics_exemplar_ids_are_hex_too() -> None:
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "pinn.loss", "gauge": {"dataPoints": [
        {"asDouble": 1.5, "timeUnixNano": "1", "exemplars": [{"asDouble": 1.5, "traceId": "01" * 16,
                                                              "spanId": "02" * 8}]}]}}]}]}]}
    request = otlp_json.parse(json.dumps(body).encode(), ExportMetricsServiceRequest())
    exemplar = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0]
    assert exemplar.trace_id == b"\x01" * 16 and exemplar.span_id == b"\x02" * 8


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "abc"}]}]}]}', "expected 32 hex digits"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "zzzzzzzzzzzzzzzz"}]}]}]}', "not hex"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', "startTimeUnixNano"),
        (b'{"resourceSpans": "nope"}', "resourceSpans"),
    ],
)
def test_bad_bodies_are_value_errors_naming_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        otlp_json.parse(body, ExportTraceServiceRequest())
