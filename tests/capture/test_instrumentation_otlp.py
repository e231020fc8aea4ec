"""OTLP export from a capture: endpoint/protocol rules, real gRPC and HTTP receivers on loopback, dead collector."""

from __future__ import annotations

import gzip
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from pinnprov.capture import otlp
from pinnprov.core import vocabulary as v
from pinnprov.pinn.observer import DatasetIdentity, EpochEnded, RunEnded, RunStarted
from pinnprov.wiring import CaptureStats, open_capture

OTLP_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_METRICS_EXPORTER", "PINNPROV_STORE", "PINNPROV_CAPTURE", "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_EXPORTER_OTLP_TIMEOUT", "PINNPROV_COLLECTOR_TOKEN",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in OTLP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PINNPROV_SPOOL_DIR", str(tmp_path / "default-spool"))  # never the user's ~/.cache


# --- resolution rules ---------------------------------------------------------------------------------------


def test_protocol_precedence_and_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otlp.resolve_protocol("127.0.0.1:4317") == "grpc"
    assert otlp.resolve_protocol("http://collector:4318") == "http/protobuf"
    assert otlp.resolve_protocol("https://collector.example/otlp/v1/traces") == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert otlp.resolve_protocol("127.0.0.1:4317") == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    assert otlp.resolve_protocol("http://collector:4318") == "grpc"
    assert otlp.resolve_protocol("127.0.0.1:4317", "http/protobuf") == "http/protobuf"
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.*http/json"):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
        otlp.resolve_protocol("127.0.0.1:4317")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    with pytest.raises(ValueError, match="otlp_endpoint.*ftp"):
        otlp.span_exporter("ftp://collector:21")
    with pytest.raises(ValueError, match="(?i)otlp_endpoint.*port"):
        otlp.span_exporter("127.0.0.1:99999")


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otlp.traces_endpoint() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317")
    assert otlp.traces_endpoint() == "http://generic:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317")
    assert otlp.traces_endpoint() == "http://traces:4317"
    assert otlp.traces_endpoint("127.0.0.1:9999") == "127.0.0.1:9999"
    with pytest.raises(ValueError, match="otlp_endpoint"):
        otlp.traces_endpoint("  ")


def test_http_urls_get_signal_paths_once(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = otlp.span_exporter("127.0.0.1:4318")
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"  # noqa: SLF001 - the URL is the point here
    assert otlp.span_exporter("http://h:4318/v1/traces")._endpoint == "http://h:4318/v1/traces"  # noqa: SLF001
    metrics = otlp.metric_exporter("http://h:4318/otlp/v1/traces")
    assert metrics is not None and metrics._endpoint == "http://h:4318/otlp/v1/metrics"  # noqa: SLF001
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://h:4318/custom/spans")
    verbatim = otlp.span_exporter("http://h:4318/custom/spans", protocol="http/protobuf")
    assert verbatim._endpoint == "http://h:4318/custom/spans"  # noqa: SLF001 - signal-specific: used as given
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert otlp.metric_exporter("http://h:4318") is None


def test_headers_parse_like_the_environment_variable() -> None:
    assert otlp.parse_headers("Authorization=Bearer abc, x-tenant = t1") == {"authorization": "Bearer abc",
                                                                              "x-tenant": "t1"}
    assert otlp.parse_headers({"X-A": "1"}) == {"x-a": "1"}
    with pytest.raises(ValueError, match="headers"):
        otlp.parse_headers("novalue")


# --- real receivers ---------------------------------------------------------------------------------------------


class _Received:
    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def spans(self) -> list:
        with self.lock:
            return [s for r in self.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def metric_names(self) -> set[str]:
        with self.lock:
            return {m.name for r in self.metrics for rm in r.resource_metrics for sm in rm.scope_metrics
                    for m in sm.metrics}


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: _Received) -> None:
        self.received = received

    def Export(self, request, context):  # noqa: N802 - gRPC method name
        with self.received.lock:
            self.received.traces.append(request)
            self.received.headers.append(dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: _Received) -> None:
        self.received = received

    def Export(self, request, context):  # noqa: N802
        with self.received.lock:
            self.received.metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, _Received]]:
    received = _Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", received
    server.stop(None)


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, _Received]]:
    received = _Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            encoding = self.headers.get("Content-Encoding", "")
            body = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body) if encoding else body
            with received.lock:
                received.headers.append({k.lower(): val for k, val in self.headers.items()})
                if self.path == "/v1/traces":
                    received.traces.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                    reply = trace_service_pb2.ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    received.metrics.append(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
                    reply = metrics_service_pb2.ExportMetricsServiceResponse()
                else:
                    self.send_error(404)
                    return
            payload = reply.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _run(observers: list, epochs: int = 5) -> str:
    (observer,) = observers
    run_id = uuid.uuid4().hex
    now = time.time()
    observer.on_run_start(RunStarted(run_id, f"otlp-{run_id[:6]}", "otlp", now, {"optimizer": "adam"},
                                     DatasetIdentity("crosshole", "00" * 32, 100, "benchmark")))
    for epoch in range(epochs):
        observer.on_epoch_end(EpochEnded(epoch, now + epoch, now + epoch + 0.5, 0.5, 1.0, 0.1, 0.2, 0.3, 1e-3))
    observer.on_run_end(RunEnded("completed", now + epochs, epochs))
    return run_id


def test_grpc_export_of_spans_and_metrics_with_headers(grpc_receiver: tuple[str, _Received]) -> None:
    endpoint, received = grpc_receiver
    stats = CaptureStats()
    with open_capture(otlp_endpoint=endpoint, headers="authorization=Bearer s3cret", stats=stats,
                      service_name="grpc-test") as observers:
        run_id = _run(observers)
    spans = received.spans()
    assert sorted(s.name for s in spans) == sorted([v.RUN_START_SPAN, v.RUN_SPAN] + [v.EPOCH_SPAN] * 5)
    assert {s.trace_id.hex() for s in spans} == {run_id}
    assert all(h.get("authorization") == "Bearer s3cret" for h in received.headers)
    resource = {kv.key: kv.value.string_value for kv in received.traces[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "grpc-test"
    training = {v.METRIC_EPOCH_DURATION, v.METRIC_LOSS, v.METRIC_LEARNING_RATE, v.METRIC_EPOCHS}
    assert training | {v.METRIC_PROCESS_MEMORY, v.METRIC_HOST_MEMORY} <= received.metric_names()
    assert received.metric_names() - training <= set(v.SYSTEM_METRICS)  # the system metrics, on by default
    (name,) = stats.destinations
    assert name.startswith("otlp+grpc") and stats.exported[name] == 7 and stats.dropped[name] == 0


def test_collector_token_becomes_the_bearer_header(
    grpc_receiver: tuple[str, _Received], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = grpc_receiver
    monkeypatch.setenv("PINNPROV_COLLECTOR_TOKEN", "t0ken")
    with open_capture(otlp_endpoint=endpoint) as observers:
        _run(observers, epochs=1)
    assert received.headers and all(h.get("authorization") == "Bearer t0ken" for h in received.headers)


def test_http_protobuf_export_chosen_by_environment(
    http_receiver: tuple[str, _Received], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = http_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)  # a base URL: /v1/traces is appended
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    with open_capture() as observers:  # no store given and an endpoint in the environment: OTLP only
        run_id = _run(observers, epochs=3)
    spans = received.spans()
    assert len(spans) == 5 and {s.trace_id.hex() for s in spans} == {run_id}
    assert v.METRIC_EPOCHS in received.metric_names()


def test_store_and_endpoint_together_write_both(grpc_receiver: tuple[str, _Received], tmp_path: Path) -> None:
    endpoint, received = grpc_receiver
    store = tmp_path / "local.sqlite"
    with open_capture(store=str(store), otlp_endpoint=endpoint) as observers:
        run_id = _run(observers, epochs=4)
    assert len(received.spans()) == 6
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?", (run_id,)).fetchone() == (4,)


def test_a_dead_collector_costs_a_bounded_exit_and_the_spool_delivers_later(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with socket_closed_port() as port:
        endpoint = f"127.0.0.1:{port}"
        stats = CaptureStats()
        began = time.monotonic()
        with open_capture(otlp_endpoint=endpoint, spool_dir=spool, export_timeout_s=1.0, shutdown_timeout_s=10.0,
                          stats=stats) as observers:
            run_id = _run(observers)
        waited = time.monotonic() - began
    (name,) = stats.destinations
    assert stats.exported[name] == 7 and stats.closed_in_time  # "exported" = kept durable in the spool
    assert waited < 30  # bounded by the timeouts, never by a retry loop against a dead collector
    assert any(path.name == "LOCK" for path in spool.rglob("LOCK"))

    # The collector comes back on the same address: the next capture adopts the spool and delivers it.
    received = _Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(received), server)
    assert server.add_insecure_port(endpoint) == port
    server.start()
    try:
        with open_capture(otlp_endpoint=endpoint, spool_dir=spool):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(received.spans()) < 7:
                time.sleep(0.05)
    finally:
        server.stop(None)
    assert sorted(s.name for s in received.spans()) == sorted([v.RUN_START_SPAN, v.RUN_SPAN] + [v.EPOCH_SPAN] * 5)
    assert {s.trace_id.hex() for s in received.spans()} == {run_id}


def test_without_a_spool_undelivered_spans_are_reported_failed(tmp_path: Path) -> None:
    with socket_closed_port() as port:
        stats = CaptureStats()
        with open_capture(otlp_endpoint=f"127.0.0.1:{port}", spool=False, export_timeout_s=0.5,
                          shutdown_timeout_s=10.0, stats=stats) as observers:
            _run(observers)
    (name,) = stats.destinations
    assert stats.exported[name] == 0
    assert stats.failed[name] + stats.dropped[name] == 7  # nothing pretends to be delivered


class socket_closed_port:  # noqa: N801 - used as a context manager like a function
    """A loopback port with nothing listening (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *args: object) -> None:
        return None
