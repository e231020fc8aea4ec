"""The OTLP/gRPC receiver spools the request bytes exactly as the client sent them (never re-encoded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prov_builders import build_spans, sample_run

from pinnprov.collector.auth import BearerToken
from pinnprov.collector.counters import Counters
from pinnprov.collector.receivers.grpc import GrpcReceiver
from pinnprov.collector.receivers.intake import Intake, count_items
from pinnprov.core.spool import Signal, Spool

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
AUTH = (("authorization", "Bearer sekrit"),)


@pytest.fixture()
def receiver(tmp_path: Path) -> Iterator[tuple[GrpcReceiver, Spool, Counters]]:
    counters = Counters()
    with Spool(tmp_path, consumers=("test",)) as spool:
        server = GrpcReceiver("127.0.0.1:0", Intake(spool, counters), token=BearerToken("sekrit"),
                              max_request_bytes=1 << 20, workers=2)
        server.start()
        try:
            yield server, spool, counters
        finally:
            server.stop(0)


def _send_raw(endpoint: str, payload: bytes) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        export(payload, metadata=AUTH, timeout=10)


def test_sdk_request_and_non_canonical_encoding_are_spooled_byte_for_byte(receiver) -> None:
    server, spool, counters = receiver
    sdk_bytes = encode_spans(build_spans(sample_run(1, epochs=5))).SerializeToString()
    # The same request with an overlong (non-minimal) length varint: valid protobuf, but re-encoding it
    # would give different bytes, so this proves nothing was re-serialised on the way to the spool.
    first = ExportTraceServiceRequest.FromString(sdk_bytes).resource_spans[0].SerializeToString()
    assert len(first) < 1 << 14
    overlong = b"\x0a" + bytes([(len(first) & 0x7F) | 0x80, (len(first) >> 7) | 0x80, 0]) + first
    assert ExportTraceServiceRequest.FromString(overlong).SerializeToString() != overlong

    _send_raw(server.endpoint, sdk_bytes)
    _send_raw(server.endpoint, overlong)

    entries = spool.read(spool.cursor("test"))
    assert [(e.signal, e.payload) for e in entries] == [(Signal.TRACES, sdk_bytes), (Signal.TRACES, overlong)]
    spans = [count_items(Signal.TRACES, ExportTraceServiceRequest.FromString(p)) for p in (sdk_bytes, overlong)]
    assert spans[0] > 0
    assert counters.get("received.traces.requests") == 2
    assert counters.get("received.traces.items") == sum(spans)
    assert counters.get("received.traces.bytes") == len(sdk_bytes) + len(overlong)


def test_malformed_bytes_are_invalid_argument_and_not_spooled(receiver) -> None:
    server, spool, counters = receiver
    with pytest.raises(grpc.RpcError) as error:
        _send_raw(server.endpoint, b"\xff\xff\xff not protobuf")
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in error.value.details()
    assert spool.read(spool.cursor("test")) == []
    assert counters.get("refused.traces.malformed") == 1
