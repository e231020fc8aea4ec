"""Metrics-only clients send to a real collector process (`pinnprov collector` on loopback, writing SQLite and the
real MonetDB); every point must be stored and answer `pinnprov query metrics --run R --name N`.

- The OpenTelemetry JS SDK (sdk-metrics with the OTLP metric exporters, tests/support/interop/js/send-metrics.js,
  pinned by the package-lock.json and installed with `npm ci` by test_interop_clients.install_js_sdk) over gRPC,
  HTTP/protobuf and HTTP/JSON: `pinn.loss{pinn.loss.component}`, `pinn.learning_rate`, `pinn.epochs`,
  `pinn.epoch.duration`, the run id as a resource attribute, no span at all.
- The OpenTelemetry Python SDK: a MeterProvider with a PeriodicExportingMetricReader and the OTLP metric exporter
  (gRPC and HTTP), to a collector writing SQLite and MonetDB at once.
Skipped only where Node.js or npm is not installed (the reason says so).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_process import Collector, rows, wait_for
from test_interop_clients import install_js_sdk

from pinnprov.core import vocabulary as v
from pinnprov.store.access import open_store
from pinnprov.store.queries import QueryOptions, run_query

pytestmark = pytest.mark.slow
EPOCHS = 20
SERIES = 7  # pinn.loss x 4 components, pinn.learning_rate, pinn.epochs, pinn.epoch.duration
EXPORTS = EPOCHS + 1  # one per epoch, and the reader's last one at shutdown (the same values, a later time)
POINTS = EXPORTS * SERIES


def per_export(values: list) -> list:
    """A series' values per export: one per epoch, the last one again at shutdown."""
    return [*values, values[-1]]


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: the JavaScript interop needs Node.js >= 18 and npm")
    return install_js_sdk()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    process = Collector(tmp_path_factory.mktemp("interop-metrics"), "--log-interval-s", "0")
    process.start()
    yield process
    assert process.stop() == 0, process.log.read_text()[-2000:]


def assert_js_metrics_stored(store_url: str, run_id: str) -> None:
    with open_store(store_url) as store:
        points = run_query(store, "metrics", QueryOptions(run_id=run_id)).rows
        assert len(points) == POINTS
        loss = run_query(store, "metrics", QueryOptions(run_id=run_id, name=v.METRIC_LOSS)).rows
        by_component: dict[str, list[float]] = {}
        for row in loss:
            assert row[2] == "gauge" and row[3] == "1"
            by_component.setdefault(json.loads(row[10])[v.LOSS_COMPONENT], []).append(row[4])
        assert sorted(by_component) == ["boundary", "data", "residual", "total"]
        assert by_component["total"] == pytest.approx(per_export([100 / (epoch + 1) for epoch in range(EPOCHS)]))
        rate = run_query(store, "metrics", QueryOptions(run_id=run_id, name=v.METRIC_LEARNING_RATE)).rows
        assert [row[4] for row in rate] == pytest.approx(per_export([0.001 * 0.99**epoch for epoch in range(EPOCHS)]))
        count = run_query(store, "metrics", QueryOptions(run_id=run_id, name=v.METRIC_EPOCHS)).rows
        assert [(row[2], row[9], row[4]) for row in count] == per_export([("sum", "cumulative", float(n + 1))
                                                                          for n in range(EPOCHS)])
        duration = run_query(store, "metrics", QueryOptions(run_id=run_id, name=v.METRIC_EPOCH_DURATION)).rows
        assert [(row[2], row[3], row[5]) for row in duration] == per_export([("histogram", "s", n + 1)
                                                                             for n in range(EPOCHS)])
        assert duration[-1][6] == pytest.approx(0.25 * EPOCHS)


@pytest.mark.parametrize("protocol", ["grpc", "http-proto", "http-json"])
def test_javascript_metrics_only_client_is_stored_and_queryable(js_sdk: Path, collector: Collector,
                                                                protocol: str, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    run_id = hashlib.sha256(f"js-metrics-{protocol}".encode()).hexdigest()[:32]
    url = f"http://{collector.grpc}" if protocol == "grpc" else f"{collector.http}/v1/metrics"
    before = collector.metrics()["refused"]
    done = subprocess.run(["node", "send-metrics.js", protocol, url, run_id, str(EPOCHS)], cwd=js_sdk,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sent {EPOCHS} epochs of metrics over {protocol}" in done.stdout and "0 failed exports" in done.stdout
    wait_for(lambda: rows(collector.store, "SELECT COUNT(*) FROM metric_point WHERE run_id = ?", (run_id,))
             == [(POINTS,)], what=f"{POINTS} metric points of {run_id}")
    assert_js_metrics_stored(f"sqlite:///{collector.store}", run_id)
    health = collector.metrics()
    assert health["refused"] == before
    pipeline = next(iter(health["sinks"].values()))["pipeline"]  # what /metrics-json shows per sink
    assert pipeline["metrics.points.accepted"] >= POINTS and "metrics.rejected" not in pipeline
    from pinnprov.cli.main import main

    capsys.readouterr()
    assert main(["query", "--store", f"sqlite:///{collector.store}", "metrics", "--run", run_id, "--name",
                 v.METRIC_EPOCHS, "--format", "json"]) == 0
    assert [row["value"] for row in json.loads(capsys.readouterr().out)] == per_export(
        [float(n + 1) for n in range(EPOCHS)])


def python_sdk_metrics(exporter: object, run_id: str) -> None:
    """A trainer's instruments through the real SDK and a PeriodicExportingMetricReader, one export per epoch."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)  # type: ignore[arg-type]
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create(
        {"service.name": "interop-python-metrics", v.RUN_ID: run_id}))
    meter = provider.get_meter(v.INSTRUMENTATION_SCOPE)
    loss, rate = meter.create_gauge(v.METRIC_LOSS, "1"), meter.create_gauge(v.METRIC_LEARNING_RATE, "1")
    count, duration = meter.create_counter(v.METRIC_EPOCHS, "1"), meter.create_histogram(v.METRIC_EPOCH_DURATION, "s")
    for epoch in range(EPOCHS):
        for component, value in (("total", 100 / (epoch + 1)), ("boundary", 0.1 / (epoch + 1)),
                                 ("residual", 1.5 / (epoch + 1)), ("data", 40 / (epoch + 1))):
            loss.set(value, {v.LOSS_COMPONENT: component})
        rate.set(0.001 * 0.99**epoch)
        count.add(1)
        duration.record(0.25)
        assert provider.force_flush(30_000)
    provider.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_python_sdk_metrics_reach_sqlite_and_monetdb_through_the_collector(tmp_path: Path, monetdb_url: str,
                                                                           protocol: str) -> None:
    run_id = hashlib.sha256(f"python-metrics-{protocol}".encode()).hexdigest()[:32]
    process = Collector(tmp_path, "--log-interval-s", "0", "--store", monetdb_url)
    process.start()
    try:
        if protocol == "http":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter: object = OTLPMetricExporter(endpoint=f"{process.http}/v1/metrics", timeout=30)
        else:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

            exporter = Grpc(endpoint=f"http://{process.grpc}", insecure=True, timeout=30)
        python_sdk_metrics(exporter, run_id)
        for url in (f"sqlite:///{process.store}", monetdb_url):
            def stored(url: str = url) -> bool:
                try:
                    with open_store(url) as store:
                        return store.execute("SELECT COUNT(*) FROM metric_point").rows == [(POINTS,)]
                except ValueError:  # the sink has not created the schema yet
                    return False

            wait_for(stored, what=f"{POINTS} metric points in {url.split(':')[0]}")
            assert_js_metrics_stored(url, run_id)  # the same instruments and values as send-metrics.js
    finally:
        assert process.stop() == 0, process.log.read_text()[-2000:]
