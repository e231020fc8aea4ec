"""Metric points in Elasticsearch: the `<prefix>-metrics` time series data stream, checked against what the
Elasticsearch reference documents for a TSDS (the rules are in tests/support/fake_elasticsearch.py: `template_problem`,
`tsds_problem`): `index.mode: time_series` with a data stream, dimensions and metric types in the mapping, `create`
without `_id`, histograms as the `histogram` field type (values ascending, counts >= 0, equal lengths). A point
delivered twice is answered 409 by the data stream and counted as written."""

from __future__ import annotations

import json

import pytest
from fake_elasticsearch import FakeElasticsearch, _fields, template_problem, tsds_problem
from test_metrics_store import RUN, sdk_request

from pinnprov.collector.es_documents import to_action
from pinnprov.collector.es_metric_documents import _exponential, _midpoints
from pinnprov.collector.pipeline import Pipeline
from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
from pinnprov.collector.translate_metrics import translate_metrics
from pinnprov.core import vocabulary as v
from pinnprov.core.es_indices import index_templates
from pinnprov.store.records import MetricPointRecord


def test_the_template_is_a_time_series_data_stream() -> None:
    body = index_templates("pinnprov")["metrics"]
    assert template_problem(body) is None
    settings, mappings = body["template"]["settings"], body["template"]["mappings"]
    assert "data_stream" in body and settings["index.mode"] == "time_series"
    fields = _fields(mappings)
    dimensions = sorted(path for path, spec in fields.items() if spec.get("time_series_dimension"))
    assert dimensions == ["attributes.hw_id", "attributes.hw_name", "attributes.hw_type",
                          "attributes.pinn_loss_component", "attributes.system_memory_state", "host.name",
                          "metric.name", "resource_id", "run_id", "service.name"]
    assert {path: spec.get("time_series_metric") for path, spec in fields.items() if spec.get("time_series_metric")} \
        == {"gauge": "gauge", "counter": "counter", "histogram": "histogram"}
    assert fields["histogram"]["type"] == "histogram"
    (attributes,) = mappings["dynamic_templates"]
    assert attributes["attributes_as_dimensions"]["mapping"] == {"type": "keyword", "time_series_dimension": True}


def test_the_fake_refuses_what_elasticsearch_refuses() -> None:
    body = index_templates("pinnprov")["metrics"]
    bad = json.loads(json.dumps(body))
    bad["template"]["mappings"]["properties"]["histogram"]["time_series_metric"] = "gauge"
    assert "time_series_metric" in (template_problem(bad) or "")
    no_stream = {key: value for key, value in body.items() if key != "data_stream"}
    assert "data stream" in (template_problem(no_stream) or "")
    mappings, settings = body["template"]["mappings"], body["template"]["settings"]
    doc = {"@timestamp": "2026-12-06T00:00:00.000Z", "metric": {"name": "x"}, "gauge": 1.0}
    assert tsds_problem("index", {"_index": "m"}, doc, mappings, settings)[2].startswith("only write ops")
    assert "_id" in tsds_problem("create", {"_index": "m", "_id": "1"}, doc, mappings, settings)[2]
    assert tsds_problem("create", {"_index": "m"}, {"@timestamp": doc["@timestamp"], "gauge": 1.0}, mappings,
                        settings)[2].startswith("Error extracting routing")
    unsorted = {**doc, "histogram": {"values": [2.0, 1.0], "counts": [1, 1]}}
    assert "increasing" in tsds_problem("create", {"_index": "m"}, unsorted, mappings, settings)[2]
    assert tsds_problem("create", {"_index": "m"}, doc, mappings, settings) is None


def points(temporality: str = "cumulative") -> list[MetricPointRecord]:
    return [r for r in translate_metrics(sdk_request(temporality)).records if isinstance(r, MetricPointRecord)]


def test_documents_follow_the_mapping() -> None:
    mappings = index_templates("pinnprov")["metrics"]["template"]["mappings"]
    settings = index_templates("pinnprov")["metrics"]["template"]["settings"]
    by_name: dict[str, dict] = {}
    for point in points("cumulative") + points("delta"):
        action = to_action(point, "pinnprov", None)  # type: ignore[arg-type]
        assert action is not None and action.op == "create" and action.index == "pinnprov-metrics"
        meta, body = action.lines()
        assert meta == {"create": {"_index": "pinnprov-metrics"}}
        assert tsds_problem("create", meta["create"], dict(body), mappings, settings) is None
        by_name[f"{point.name}/{point.temporality}/{point.attributes}"] = dict(body)
    loss = by_name[f"{v.METRIC_LOSS}/None/" + json.dumps({v.LOSS_COMPONENT: "total"}, separators=(",", ":"))]
    assert loss["gauge"] == pytest.approx(1 / 3) and loss["run_id"] == RUN
    assert loss["attributes"] == {"pinn_loss_component": "total"}
    assert loss["service"] == {"name": "trainer"} and loss["host"] == {"name": "node-1"}
    assert by_name[f"{v.METRIC_EPOCHS}/cumulative/{{}}"]["counter"] == 3
    assert by_name[f"{v.METRIC_EPOCHS}/delta/{{}}"]["gauge"] == 3  # a delta sum is no counter in Elasticsearch
    duration = by_name[f"{v.METRIC_EPOCH_DURATION}/cumulative/{{}}"]
    assert sum(duration["histogram"]["counts"]) == 3 and duration["histogram_count"] == 3
    assert duration["histogram_sum"] == pytest.approx(0.78)
    exponential = by_name["pinn.step.duration/delta/{}"]
    assert sum(exponential["histogram"]["counts"]) == 3
    assert exponential["histogram"]["values"] == sorted(exponential["histogram"]["values"])
    assert all(0.005 < value < 0.06 for value in exponential["histogram"]["values"])


def test_bucket_conversions() -> None:
    assert _midpoints([0.0, 5.0, 10.0], [0, 2, 0, 1]) == ([2.5, 10.0], [2, 1])
    assert _midpoints([1.0], [3, 1]) == ([0.5, 1.0], [3, 1])
    point = MetricPointRecord("p", "r", None, "x", "", "exponential_histogram", "delta", None, "", None, 1.0, "{}",
                              scale=0, zero_count=1, positive_offset=1, positive_counts="[1, 2]",
                              negative_offset=0, negative_counts="[4]")
    assert _exponential(point) == ([-1.5, 0.0, 3.0, 6.0], [4, 1, 1, 2])


def test_the_sink_writes_the_data_stream_and_a_redelivery_is_a_no_op() -> None:
    with FakeElasticsearch() as es:
        sink = ElasticsearchSink(es.url, backoff_s=0.01, max_backoff_s=0.02)
        pipeline = Pipeline([sink])
        request = sdk_request("cumulative").SerializeToString()
        first = pipeline.handle_metrics(request)
        assert first.ok and first.accepted == 8, first.detail
        stream = es.state.indices["pinnprov-metrics"]
        assert stream.get("data_stream") and len(stream["docs"]) == 8
        creates = [r for r in es.state.requests if r.path == "/_data_stream/pinnprov-metrics"]
        assert [r.method for r in creates] == ["PUT"]
        again = pipeline.handle_metrics(request)
        assert again.ok and (again.accepted, again.rejected) == (8, 0), again.detail
        assert len(stream["docs"]) == 8
        assert pipeline.counters.snapshot()["sink.elasticsearch.written"] == 16
        sink.shutdown()
