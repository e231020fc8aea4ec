"""The collector as a real process: real OTel SDK exporters over gRPC and HTTP into SQLite, row by row, and
every kind of bad request refused with the right status while the service keeps serving."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from collector_process import Collector, rows, wait_for
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import SpanExportResult
from prov_builders import build_spans, request_for, sample_run

from pinnprov.collector.receivers import otlp_json

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token-for-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LIMIT = 300_000


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    workdir = tmp_path_factory.mktemp("collector")
    process = Collector(workdir, "--max-request-bytes", str(LIMIT), env={"PINNPROV_COLLECTOR_TOKEN": TOKEN})
    process.start()
    yield process
    assert process.stop() == 0, process.log.read_text()[-2000:]


def _epochs(db: Path, run_id: str) -> list[tuple]:
    return rows(db, "SELECT epoch, loss, loss_bc, loss_residual, loss_data, learning_rate, elapsed_s FROM "
                    "epoch_metric WHERE run_id = ? ORDER BY epoch", (run_id,))


def _expected(n: int, epochs: int) -> list[tuple]:
    return [(e, 100.0 / 2**e + n, 0.1 / (e + 1), 1.5 / (e + 1), 40.0 / (e + 1), 1e-3 * 0.99**e, 0.25 + 0.01 * e)
            for e in range(epochs)]


def _assert_epochs(db: Path, n: int, epochs: int) -> None:
    run_id = f"{n:032x}"
    got = wait_for(lambda: (r := _epochs(db, run_id)) and len(r) == epochs and r, 60, what=f"epochs of run {n}")
    for row, want in zip(got, _expected(n, epochs), strict=True):
        assert row[0] == want[0]
        assert row[1:] == pytest.approx(want[1:], rel=1e-6)


def test_sdk_exporters_over_grpc_and_http_land_row_by_row(collector: Collector) -> None:
    grpc_exporter = GrpcSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, headers=AUTH)
    http_exporter = HttpSpanExporter(endpoint=f"{collector.http}/v1/traces", headers=AUTH)
    assert grpc_exporter.export(build_spans(sample_run(1, epochs=7))) is SpanExportResult.SUCCESS
    assert http_exporter.export(build_spans(sample_run(2, epochs=4))) is SpanExportResult.SUCCESS
    grpc_exporter.shutdown()
    http_exporter.shutdown()
    _assert_epochs(collector.store, 1, 7)
    _assert_epochs(collector.store, 2, 4)
    runs = wait_for(lambda: (r := rows(collector.store, "SELECT run_id, run_name, status, optimizer, last_epoch "
                                                       "FROM run ORDER BY run_id")) and len(r) == 2 and r[1][2] and r)
    assert runs == [(f"{1:032x}", "run-001", "completed", "adam", 6), (f"{2:032x}", "run-002", "completed", "adam", 3)]
    assert rows(collector.store, "SELECT parameter, new_value, agent FROM adaptation WHERE run_id = ?",
                (f"{1:032x}",)) == [("learning_rate", "0.0001", "user:alice")]


def test_json_with_hex_ids_and_gzip_protobuf_are_accepted(collector: Collector) -> None:
    request = request_for(sample_run(3, epochs=3))
    body = otlp_json.dumps(request)
    span_ids = {span.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}
    assert any(span_id.encode() in body for span_id in span_ids)  # hex on the wire, as the spec says
    answer = requests.post(f"{collector.http}/v1/traces", data=body,
                           headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    stored = wait_for(lambda: rows(collector.store, "SELECT span_id FROM epoch_metric WHERE run_id = ?",
                                   (f"{3:032x}",)), what="JSON epochs")
    assert {span_id for (span_id,) in stored} <= span_ids and len(stored) == 3

    zipped = gzip.compress(request_for(sample_run(4, epochs=2)).SerializeToString())
    answer = requests.post(f"{collector.http}/v1/traces", data=zipped, timeout=30,
                           headers={**AUTH, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert answer.status_code == 200
    _assert_epochs(collector.store, 4, 2)


def _post(collector: Collector, body: bytes, content_type: str = "application/x-protobuf",
          headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{collector.http}/v1/traces", data=body, timeout=30,
                         headers={"Content-Type": content_type, **(AUTH if headers is None else headers)})


def test_bad_requests_are_refused_with_the_right_status_and_service_keeps_serving(collector: Collector) -> None:
    good = request_for(sample_run(5, epochs=2)).SerializeToString()
    malformed = _post(collector, b"\xff\xff\xff not protobuf")
    assert malformed.status_code == 400
    assert "ExportTraceServiceRequest" in Status.FromString(malformed.content).message
    assert _post(collector, b'{"resourceSpans": [', "application/json").status_code == 400
    bad_id = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"00"}]}]}]}'
    refused = _post(collector, bad_id, "application/json")
    assert refused.status_code == 400 and "traceId" in refused.json()["message"]
    assert _post(collector, good, "text/plain").status_code == 415
    oversized = _post(collector, b"\x00" * (LIMIT + 1))
    assert oversized.status_code == 413 and str(LIMIT) in Status.FromString(oversized.content).message
    bomb = gzip.compress(b"\x00" * (LIMIT * 4))
    assert len(bomb) < LIMIT
    assert _post(collector, bomb, headers={**AUTH, "Content-Encoding": "gzip"}).status_code == 413
    unauthenticated = _post(collector, good, headers={})
    assert unauthenticated.status_code == 401 and unauthenticated.headers["WWW-Authenticate"] == "Bearer"
    assert _post(collector, good, headers={"Authorization": "Bearer wrong"}).status_code == 401

    with grpc.insecure_channel(collector.grpc) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(good)
        with pytest.raises(grpc.RpcError) as no_token:
            stub.Export(request, timeout=30)
        assert no_token.value.code() is grpc.StatusCode.UNAUTHENTICATED
        huge = request_for(*[sample_run(100 + i, epochs=200) for i in range(6)])
        assert huge.ByteSize() > LIMIT
        with pytest.raises(grpc.RpcError) as too_big:
            stub.Export(huge, metadata=tuple(AUTH.items()), timeout=30)
        assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        stub.Export(request, metadata=tuple(AUTH.items()), timeout=30)  # still serving

    assert _post(collector, good).status_code == 200
    _assert_epochs(collector.store, 5, 2)
    refused_counts = collector.metrics(TOKEN)["refused"]
    assert refused_counts["traces.malformed"] >= 3 and refused_counts["traces.too_large"] == 2
    assert refused_counts["traces.unauthenticated"] == 2 and refused_counts["traces.unsupported"] == 1
    assert refused_counts["other.unauthenticated"] >= 1  # the gRPC call without a token


def test_metrics_health_and_self_metrics(collector: Collector) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"http://{collector.grpc}", insecure=True, headers=AUTH),
        export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("pinnprov").create_counter("pinn.epochs").add(3)
    provider.shutdown()  # exports once
    received = wait_for(lambda: (m := collector.metrics(TOKEN)["received"]).get("metrics.requests") and m)
    assert received["metrics.items"] >= 1
    health = requests.get(f"{collector.http}/healthz", timeout=30)  # open: no token needed
    assert health.status_code == 200 and health.json()["status"] in ("ok", "degraded")
    assert requests.get(f"{collector.http}/metrics-json", timeout=30).status_code == 401
    metrics = collector.metrics(TOKEN)
    sink = metrics["sinks"]["sqlite"]
    assert sink["delivery"]["traces.accepted"] >= 7 and sink["queue_depth"] >= 0
    assert metrics["spool"]["size_bytes"] >= 0 and metrics["endpoints"]["grpc"] == collector.grpc


def test_tls_with_token_for_both_protocols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these variables override the exporter's certificate_file: a client-side quirk, not ours.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    config = tmp_path / "collector.yaml"
    config.write_text(f"tls_cert_file: {cert}\ntls_key_file: {key}\ntoken: {TOKEN}\n")
    process = Collector(tmp_path, config=config).start()
    try:
        grpc_exporter = GrpcSpanExporter(endpoint=f"https://localhost:{process.grpc_port}", insecure=False,
                                         credentials=grpc.ssl_channel_credentials(cert.read_bytes()), headers=AUTH)
        assert grpc_exporter.export(build_spans(sample_run(6, epochs=2))) is SpanExportResult.SUCCESS
        grpc_exporter.shutdown()
        http_exporter = HttpSpanExporter(endpoint=f"https://localhost:{process.http_port}/v1/traces",
                                         certificate_file=str(cert), headers=AUTH)
        assert http_exporter.export(build_spans(sample_run(7, epochs=2))) is SpanExportResult.SUCCESS
        http_exporter.shutdown()
        with pytest.raises(requests.exceptions.SSLError):  # plaintext-trusting clients cannot talk to it
            requests.get(f"https://localhost:{process.http_port}/healthz", timeout=30)
        _assert_epochs(process.store, 6, 2)
        _assert_epochs(process.store, 7, 2)
    finally:
        assert process.stop() == 0
