"""OTLP metrics from the real Python SDK reach the stores: every kind (gauge, sum, histogram, exponential
histogram) in delta and cumulative temporality, through the collector's pipeline into SQLite and the real MonetDB
(a schema per test, tests/support/monetdb_server.py), idempotently, and queryable by name and run
(`pinnprov query metrics`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from pinnprov.collector.pipeline import Pipeline
from pinnprov.collector.translate_metrics import translate_metrics
from pinnprov.core import vocabulary as v
from pinnprov.store.access import open_store
from pinnprov.store.monetdb_sink import MonetdbSink
from pinnprov.store.queries import QueryOptions, run_query
from pinnprov.store.records import MetricPointRecord
from pinnprov.store.sqlite_sink import SqliteSink

RUN = "0123456789abcdef0123456789abcdef"
DELTA = {Counter: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.DELTA,
         Histogram: AggregationTemporality.DELTA}


def sdk_request(temporality: str, *, run_on_resource: bool = True, epochs: int = 3) -> ExportMetricsServiceRequest:
    """A trainer's instruments through the real SDK: loss gauge per component, learning rate, epochs counter,
    epoch-duration histogram (explicit buckets), an exponential histogram and an up-down counter."""
    reader = InMemoryMetricReader(preferred_temporality=DELTA if temporality == "delta" else {})
    attributes = {"service.name": "trainer", "host.name": "node-1"}
    if run_on_resource:
        attributes[v.RUN_ID] = RUN
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create(attributes),
                             views=[View(instrument_name="pinn.step.duration",
                                         aggregation=ExponentialBucketHistogramAggregation())])
    meter = provider.get_meter(v.INSTRUMENTATION_SCOPE)
    loss = meter.create_gauge(v.METRIC_LOSS, unit="1")
    rate = meter.create_gauge(v.METRIC_LEARNING_RATE, unit="1")
    count = meter.create_counter(v.METRIC_EPOCHS, unit="1")
    duration = meter.create_histogram(v.METRIC_EPOCH_DURATION, unit="s")
    steps = meter.create_histogram("pinn.step.duration", unit="s")
    queue = meter.create_up_down_counter("pinn.queue", unit="1")
    for epoch in range(epochs):
        for component, value in (("total", 1.0 / (epoch + 1)), ("boundary", 0.1), ("residual", 0.5)):
            loss.set(value, {v.LOSS_COMPONENT: component})
        rate.set(0.001 * 0.9**epoch)
        count.add(1)
        duration.record(0.25 + epoch * 0.01)
        steps.record(0.01 * (epoch + 1))
        queue.add(1 if epoch % 2 else -1)
    request = encode_metrics(reader.get_metrics_data())
    provider.shutdown()
    return request


def test_every_kind_and_temporality_translates() -> None:
    for temporality in ("delta", "cumulative"):
        result = translate_metrics(sdk_request(temporality))
        points = [r for r in result.records if isinstance(r, MetricPointRecord)]
        assert (result.points, result.accepted, result.rejected) == (8, 8, [])
        kinds = {p.name: (p.kind, p.temporality) for p in points}
        assert kinds[v.METRIC_LOSS] == ("gauge", None)
        assert kinds[v.METRIC_EPOCHS] == ("sum", temporality)
        assert kinds[v.METRIC_EPOCH_DURATION] == ("histogram", temporality)
        assert kinds["pinn.step.duration"] == ("exponential_histogram", temporality)
        assert {p.run_id for p in points} == {RUN}
        histogram = next(p for p in points if p.name == v.METRIC_EPOCH_DURATION)
        assert histogram.hist_count == 3 and histogram.hist_sum == pytest.approx(0.78)
        assert sum(json.loads(histogram.bucket_counts or "[]")) == 3
        assert len(json.loads(histogram.bucket_counts or "[]")) == len(json.loads(histogram.bounds or "[]")) + 1
        exponential = next(p for p in points if p.name == "pinn.step.duration")
        assert exponential.scale is not None and exponential.hist_count == 3
        assert sum(json.loads(exponential.positive_counts or "[]")) == 3


def test_a_point_s_own_run_id_wins_and_a_bad_one_is_dropped_not_the_point() -> None:
    request = sdk_request("cumulative", run_on_resource=False)
    points = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    points[0].attributes.add(key=v.RUN_ID).value.string_value = "f" * 32
    points[1].attributes.add(key=v.RUN_ID).value.string_value = "not a run id"
    result = translate_metrics(request)
    assert result.accepted == 8 and not result.rejected
    assert [d.reason for d in result.dropped] == ["bad_attribute"]
    loss = [r for r in result.records if isinstance(r, MetricPointRecord) and r.name == v.METRIC_LOSS]
    assert [p.run_id for p in loss] == ["f" * 32, None, None]
    assert v.RUN_ID not in json.loads(loss[1].attributes)


def test_bad_points_are_rejected_one_by_one() -> None:
    request = sdk_request("cumulative")
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    metrics[0].gauge.data_points[0].time_unix_nano = 0
    metrics[1].name = ""
    result = translate_metrics(request)
    assert sorted(r.reason for r in result.rejected) == ["bad_metric", "bad_time"]
    assert result.accepted == 6
    pipeline = Pipeline([])
    outcome = pipeline.handle_metrics(request.SerializeToString())
    assert outcome.ok and (outcome.accepted, outcome.rejected) == (6, 2)
    counters = pipeline.counters.snapshot()
    assert counters["metrics.rejected.bad_time"] == 1 and counters["metrics.rejected.bad_metric"] == 1


@pytest.fixture(params=["sqlite", "monetdb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metrics.db'}"
    else:
        yield request.getfixturevalue("monetdb_url")


def _sink(url: str) -> SqliteSink | MonetdbSink:
    return SqliteSink(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else MonetdbSink(url)


def test_sdk_metrics_are_stored_idempotently_and_queryable(store_url: str) -> None:
    sink = _sink(store_url)
    pipeline = Pipeline([sink])
    requests = [sdk_request("delta"), sdk_request("cumulative"), sdk_request("cumulative", run_on_resource=False)]
    for request in requests:
        assert pipeline.handle_metrics(request.SerializeToString()).ok
    assert pipeline.handle_metrics(requests[0].SerializeToString()).ok  # a re-delivery writes nothing new
    assert sink.force_flush(30)
    sink.shutdown()
    with open_store(store_url) as store:
        everything = run_query(store, "metrics", QueryOptions()).rows
        assert len(everything) == 24
        mine = run_query(store, "metrics", QueryOptions(run_id=RUN)).rows
        assert len(mine) == 16
        loss = run_query(store, "metrics", QueryOptions(run_id=RUN, name=v.METRIC_LOSS)).rows
        assert sorted(json.loads(row[10])[v.LOSS_COMPONENT] for row in loss) == sorted(
            ["total", "boundary", "residual"] * 2)
        totals = [row[4] for row in loss if json.loads(row[10])[v.LOSS_COMPONENT] == "total"]
        assert totals == [pytest.approx(1 / 3)] * 2
        histograms = run_query(store, "metrics", QueryOptions(name=v.METRIC_EPOCH_DURATION)).rows
        assert sorted((row[9], row[5]) for row in histograms) == [("cumulative", 3), ("cumulative", 3), ("delta", 3)]
        assert {row[12] for row in everything} == {"trainer"}
        prefixed = run_query(store, "metrics", QueryOptions(run_id=RUN, name="pinn.step.")).rows
        assert {row[1] for row in prefixed} == {"pinn.step.duration"}
        orphans = store.execute("SELECT COUNT(*) FROM metric_point WHERE run_id IS NULL").rows
        assert orphans == [(8,)]
        resources = store.execute("SELECT run_id, service, host FROM metric_resource ORDER BY run_id").rows
        assert sorted(resources, key=str) == sorted([(None, "trainer", "node-1"), (RUN, "trainer", "node-1")],
                                                     key=str)


def test_the_cli_lists_and_runs_the_metrics_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pinnprov.cli.main import main

    db = tmp_path / "cli.db"
    sink = SqliteSink(db)
    assert Pipeline([sink]).handle_metrics(sdk_request("cumulative")).ok
    sink.shutdown()
    assert main(["query", "--store", f"sqlite:///{db}"]) == 2  # no name: the named queries are listed
    assert "metric_epochs, metrics" in capsys.readouterr().err
    assert main(["query", "--store", f"sqlite:///{db}", "metrics", "--run", RUN, "--name", v.METRIC_LEARNING_RATE,
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["value"] == pytest.approx(0.001 * 0.9**2)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM metric_point").fetchone() == (8,)


def test_attributes_beyond_scalars_take_the_general_reader() -> None:
    """Arrays and maps are kept as JSON; an oversized string refuses its point, as for spans."""
    from pinnprov.collector.otlp_values import MAX_STRING_BYTES

    request = sdk_request("cumulative")
    points = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    array = points[0].attributes.add(key="layers").value.array_value.values
    array.add().int_value, array.add().int_value = 20, 20
    points[1].attributes.add(key="note").value.string_value = "x" * (MAX_STRING_BYTES + 1)
    result = translate_metrics(request)
    assert [r.reason for r in result.rejected] == ["bad_attribute"] and result.accepted == 7
    first = next(r for r in result.records if isinstance(r, MetricPointRecord))
    assert json.loads(first.attributes)["layers"] == [20, 20]
    again = translate_metrics(request)  # the same series: the same ids (the id cache changes nothing)
    assert [r.point_id for r in again.records if isinstance(r, MetricPointRecord)] == [
        r.point_id for r in result.records if isinstance(r, MetricPointRecord)]
