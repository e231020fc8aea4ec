"""One resolution of where telemetry goes and how it authenticates, for capture, steering and `pinnprov flush`.

Unit tests of the precedence rules, then the case that used to differ: `pinnprov flush` must send the headers of
OTEL_EXPORTER_OTLP_TRACES_HEADERS (as capture and the steering poller do) to a real collector that requires a
bearer token.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from collector_process import rows, wait_for
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prov_builders import build_spans, sample_run

from pinnprov.capture.destination import resolve_destination, resolve_headers
from pinnprov.capture.spool_exporter import SpoolingSpanExporter, find_spools
from pinnprov.collector.config import CollectorConfig
from pinnprov.collector.service import CollectorService

ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
       "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
       "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "PINNPROV_COLLECTOR_TOKEN")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_headers_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_headers() == {}
    monkeypatch.setenv("PINNPROV_COLLECTOR_TOKEN", "t0ken")
    assert resolve_headers() == {"authorization": "Bearer t0ken"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20generic")  # W3C baggage: decoded
    assert resolve_headers() == {"authorization": "Bearer generic"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "Authorization=Bearer traces,x-tenant=a")
    assert resolve_headers() == {"authorization": "Bearer traces", "x-tenant": "a"}
    assert resolve_headers("x-only=1") == {"x-only": "1"}
    assert resolve_headers({"X-Map": "2"}) == {"x-map": "2"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "novalue")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        resolve_headers()


def test_destination_endpoint_protocol_and_ca(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_destination() is None  # nothing anywhere: the embedded store
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector.example:4318")
    destination = resolve_destination()
    assert destination is not None and destination.protocol == "http/protobuf"
    assert destination.name == "otlp+http/protobuf://collector.example:4318" and not destination.uses_tls
    grpc = resolve_destination("https://c.example:4317", headers="a=b")
    assert grpc is not None and grpc.protocol == "grpc" and grpc.uses_tls and grpc.headers == {"a": "b"}
    assert "a=b" not in repr(grpc) and "'b'" not in repr(grpc)  # headers may carry secrets
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"):
        resolve_destination()
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(tmp_path / "ca.pem"))
    resolved = resolve_destination()
    assert resolved is not None and resolved.ca_file == str(tmp_path / "ca.pem")
    with pytest.raises(ValueError, match="otlp_endpoint"):
        resolve_destination("ftp://nope:21")


def test_flush_sends_the_traces_headers_to_a_token_protected_collector(tmp_path: Path) -> None:
    token = "s3cret-flush-token"
    config = CollectorConfig(grpc_endpoint="127.0.0.1:0", http_endpoint="", stores=(f"sqlite:///{tmp_path / 'p.db'}",),
                             spool_dir=tmp_path / "collector-spool", log_interval_s=0, token=token)
    service = CollectorService(config)
    service.start()
    try:
        endpoint = service.endpoints["grpc"]
        root = tmp_path / "spool"
        # A trainer whose collector refused it (no token): its spans wait in a spool.
        exporter = SpoolingSpanExporter(OTLPSpanExporter(endpoint=f"http://{endpoint}", insecure=True,
                                                         timeout=2), root, retry_initial_s=60, shutdown_replay_s=0.1)
        assert exporter.export(build_spans(sample_run(3, epochs=3))) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(list(find_spools(root))) == 1

        def flush(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "pinnprov", "flush", "--spool", str(root), "--endpoint",
                                   f"http://{endpoint}", "--timeout", "2"], capture_output=True, text=True,
                                  timeout=120, env={**_base_env(), **env})

        refused = flush({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20wrong"})
        assert refused.returncode == 1 and "not delivered" in refused.stdout
        # The traces-specific headers win over a stale collector token, as in capture and steering.
        delivered = flush({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"authorization=Bearer%20{token}",
                           "PINNPROV_COLLECTOR_TOKEN": "stale-token"})
        assert delivered.returncode == 0, delivered.stdout + delivered.stderr
        wait_for(lambda: rows(tmp_path / "p.db", "SELECT COUNT(*) FROM epoch_metric") == [(3,)], 60,
                 what="flushed epochs")
    finally:
        service.stop()


def _base_env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key not in ENV}
