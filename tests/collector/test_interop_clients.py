"""Foreign OpenTelemetry clients send whole runs to a real collector process; every epoch must arrive and the
paper's Tables 1-3 (`pinnprov query epochs|latest|lr`) must read back exactly what was sent.

- The OpenTelemetry JS SDK (tests/interop/js, pinned by its package-lock.json, installed here with `npm ci`
  into a cache directory) over gRPC, HTTP/protobuf and HTTP/JSON; its HTTP exporters send
  `Transfer-Encoding: chunked` bodies without Content-Length (the old receiver refused them with 411).
- The OpenTelemetry Python SDK with gzip compression, over HTTP/protobuf and gRPC.
Skipped only where Node.js or npm is not installed (the reason says so); a failing `npm ci` fails the test.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_process import Collector, rows, wait_for

from pinnprov.store.access import open_store
from pinnprov.store.queries import QueryOptions, run_query

pytestmark = pytest.mark.slow
JS_DIR = Path(__file__).resolve().parents[1] / "support" / "interop" / "js"
EPOCHS = 300
T0 = 1_700_000_000.0


def _npm_cache_root() -> Path:
    base = os.environ.get("PINNPROV_INTEROP_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinnprov" / "interop-js"


def install_js_sdk() -> Path:
    """`npm ci` of tests/interop/js into a cache directory keyed by its lockfile; returns that directory."""
    lock = (JS_DIR / "package-lock.json").read_bytes()
    target = _npm_cache_root() / hashlib.sha256(lock + (JS_DIR / "package.json").read_bytes()).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # parallel test runs install once
        if not (target / ".installed").exists():
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(JS_DIR / name, target / name)
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=target,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"npm ci failed: {done.stderr[-2000:]}"
            (target / ".installed").write_text("ok\n")
    for script in JS_DIR.glob("*.js"):  # send-run.js, send-metrics.js: resolved against its node_modules
        shutil.copyfile(script, target / script.name)
    return target


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: the JavaScript interop needs Node.js >= 18 and npm")
    return install_js_sdk()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    process = Collector(tmp_path_factory.mktemp("interop"), "--log-interval-s", "0")
    process.start()
    yield process
    assert process.stop() == 0, process.log.read_text()[-2000:]


def expected_epoch(epoch: int) -> tuple[float, ...]:
    """(elapsed_s, loss, loss_bc, loss_residual, loss_data, learning_rate, ended_at) of an epoch of send-run.js."""
    return (0.25, 100 / 2 ** (epoch % 40) + 1, 0.1 / (epoch + 1), 1.5 / (epoch + 1), 40 / (epoch + 1),
            0.001 * 0.99**epoch, T0 + 0.25 * (epoch + 1))


def assert_run_arrived(store_path: Path, run_id: str, run_name: str) -> None:
    """Every epoch, then Tables 1-3 exactly as sent."""
    wait_for(lambda: len(rows(store_path, "SELECT 1 FROM epoch_metric WHERE run_id = ?", (run_id,))) == EPOCHS
             and rows(store_path, "SELECT status FROM run WHERE run_id = ?", (run_id,)) == [("completed",)],
             what=f"{EPOCHS} epochs and the end of run {run_name}")
    with open_store(f"sqlite:///{store_path}") as store:
        table1 = run_query(store, "epochs", QueryOptions(run_id=run_id)).rows
        assert [row[0] for row in table1] == list(range(EPOCHS))
        for row in table1:
            assert row[1:] == pytest.approx(expected_epoch(row[0]), rel=1e-9)
        latest = {row[0]: row for row in run_query(store, "latest", QueryOptions(experiment="interop")).rows}
        last = EPOCHS - 1
        assert latest[run_name][:3] == (run_name, "interop", last)
        assert latest[run_name][3:8] == pytest.approx(expected_epoch(last)[:5], rel=1e-9)
        assert latest[run_name][8:11] == ("adam", "tanh", "completed")
        lr = {row[0]: row for row in run_query(store, "lr", QueryOptions(experiment="interop")).rows}
        assert lr[run_name][1] == "exponential"
        assert lr[run_name][2:6] == pytest.approx((0.99, 1, 0.001, 0.001 * 0.99**last), rel=1e-9)
        assert lr[run_name][6:] == (last, "completed")


@pytest.mark.parametrize(("protocol", "compression"), [("grpc", ""), ("http-proto", ""), ("http-json", ""),
                                                        ("http-proto", "gzip")])
def test_javascript_sdk_run_arrives_epoch_for_epoch(js_sdk: Path, collector: Collector, protocol: str,
                                                    compression: str) -> None:
    run_id = hashlib.sha256(f"js-{protocol}-{compression}".encode()).hexdigest()[:32]
    url = f"http://{collector.grpc}" if protocol == "grpc" else f"{collector.http}/v1/traces"
    before = collector.metrics()["refused"]
    done = subprocess.run(["node", "send-run.js", protocol, url, run_id, str(EPOCHS), compression], cwd=js_sdk,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sent {EPOCHS} epochs over {protocol}" in done.stdout and "0 failed exports" in done.stdout
    assert_run_arrived(collector.store, run_id, f"js-{protocol}{'-gzip' if compression else ''}")
    assert collector.metrics()["refused"] == before  # nothing of it was refused (no 411, no 400)


def python_sdk_run(exporter: object, run_id: str, run_name: str) -> None:
    """The same run as send-run.js, through the real Python SDK and a BatchSpanProcessor."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import set_span_in_context
    from prov_builders import RunIdGenerator

    ns = lambda seconds: int(round(seconds * 1e9))  # noqa: E731
    provider = TracerProvider(resource=Resource.create({"service.name": "interop-python"}),
                              id_generator=RunIdGenerator(run_id))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50,  # type: ignore[arg-type]
                                                   max_export_batch_size=64))
    tracer = provider.get_tracer("pinnprov")
    identity = {"pinn.run.id": run_id, "pinn.run.name": run_name, "pinn.experiment.name": "interop"}
    root = tracer.start_span("pinn.run", start_time=ns(T0))
    context = set_span_in_context(root)
    tracer.start_span("pinn.run.start", context=context, start_time=ns(T0), attributes={
        **identity, "pinn.hp.optimizer": "adam", "pinn.hp.activation": "tanh", "pinn.hp.lr.schedule": "exponential",
        "pinn.hp.lr.initial": 0.001, "pinn.hp.lr.decay_rate": 0.99, "pinn.hp.lr.decay_steps": 1,
        "pinn.hp.epochs": EPOCHS, "pinn.hp.seed": 1337}).end(end_time=ns(T0))
    for epoch in range(EPOCHS):
        elapsed, loss, bc, residual, data, lr, ended = expected_epoch(epoch)
        tracer.start_span("pinn.epoch", context=context, start_time=ns(ended - elapsed), attributes={
            "pinn.epoch": epoch, "pinn.epoch.elapsed": elapsed, "pinn.loss.total": loss, "pinn.loss.boundary": bc,
            "pinn.loss.residual": residual, "pinn.loss.data": data, "pinn.learning_rate": lr}).end(end_time=ns(ended))
    root.set_attributes({**identity, "pinn.run.status": "completed", "pinn.run.epochs": EPOCHS})
    root.end(end_time=ns(T0 + 0.25 * EPOCHS + 1))
    assert provider.force_flush(60_000)
    provider.shutdown()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_python_sdk_with_gzip_arrives_epoch_for_epoch(collector: Collector, protocol: str) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    run_id = hashlib.sha256(f"python-gzip-{protocol}".encode()).hexdigest()[:32]
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        inner = OTLPSpanExporter(endpoint=f"{collector.http}/v1/traces", compression=Compression.Gzip, timeout=30)
    else:
        from grpc import Compression as GrpcCompression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        inner = GrpcExporter(endpoint=f"http://{collector.grpc}", insecure=True, compression=GrpcCompression.Gzip,
                             timeout=30)
    results: list[SpanExportResult] = []

    class Recording:  # the BatchSpanProcessor hides export results; the test must see every one
        def export(self, spans: object) -> SpanExportResult:
            results.append(inner.export(spans))  # type: ignore[arg-type]
            return results[-1]

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    python_sdk_run(Recording(), run_id, f"python-gzip-{protocol}")
    assert results and set(results) == {SpanExportResult.SUCCESS}
    assert_run_arrived(collector.store, run_id, f"python-gzip-{protocol}")


if __name__ == "__main__":  # `python tests/test_interop_clients.py` installs the JS SDK (what CI may do first)
    print(install_js_sdk())
    sys.exit(0)
