"""OTLP -> PROV translation and the pipeline, with requests built by the real OpenTelemetry SDK and encoder."""

from __future__ import annotations

import math

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prov_builders import RunSpec, build_spans, epoch_attributes, request_for, run_id, sample_run

from pinnprov.collector.otlp_values import MAX_STRING_BYTES
from pinnprov.collector.pipeline import Pipeline
from pinnprov.collector.translate import translate_traces
from pinnprov.collector.translate_metrics import translate_metrics
from pinnprov.core import vocabulary as v
from pinnprov.store.records import AdaptationRecord, AlertRecord, EpochRecord, RunEndRecord, RunStartRecord
from pinnprov.store.sink import ExportStatus
from pinnprov.store.sqlite_sink import SqliteSink


def _by_type(records: list, kind: type) -> list:
    return [record for record in records if isinstance(record, kind)]


def test_every_field_maps_exactly() -> None:
    spec = sample_run(7, epochs=4)
    spans = build_spans(spec)
    result = translate_traces(encode_spans(spans))
    assert result.rejected == [] and result.ignored == 0
    by_name = {span.name: span for span in spans}
    epoch_spans = [span for span in spans if span.name == v.EPOCH_SPAN]

    (start,) = _by_type(result.records, RunStartRecord)
    start_span = by_name[v.RUN_START_SPAN]
    assert start.run_id == spec.run_id == format(start_span.context.trace_id, "032x")
    assert start.record_id == format(start_span.context.span_id, "016x")
    assert start.run_name == "run-007" and start.experiment == "exp"
    assert start.started_at == start_span.start_time / 1e9
    assert dict(start.hyperparameters) == dict(spec.hyperparameters)
    assert isinstance(start.hyperparameters["use_bias"], bool) and isinstance(start.hyperparameters["seed"], int)
    assert (start.dataset_name, start.dataset_sha256, start.dataset_picks, start.dataset_source) == (
        "crosshole",
        "ab" * 32,
        100,
        "benchmark",
    )
    assert start.host == "node-1" and start.service == "pinnprov-test"
    assert start.resource["process.pid"] == 4242 and start.resource[v.RESOURCE_DEVICES] == '["CPU:0"]'

    epochs = sorted(_by_type(result.records, EpochRecord), key=lambda r: r.epoch)
    assert [e.epoch for e in epochs] == [0, 1, 2, 3]
    for record, span, attrs in zip(epochs, epoch_spans, spec.epochs, strict=True):
        assert record.record_id == format(span.context.span_id, "016x")
        assert record.started_at == span.start_time / 1e9 and record.ended_at == span.end_time / 1e9
        assert record.elapsed_s == attrs[v.EPOCH_ELAPSED]
        assert (record.loss, record.loss_bc, record.loss_residual, record.loss_data, record.learning_rate) == (
            attrs[v.LOSS_TOTAL],
            attrs[v.LOSS_BOUNDARY],
            attrs[v.LOSS_RESIDUAL],
            attrs[v.LOSS_DATA],
            attrs[v.LEARNING_RATE],
        )
        assert dict(record.extra) == {"data_rms_s": attrs[v.EPOCH_EXTRA_PREFIX + "data_rms_s"]}

    (adaptation,) = _by_type(result.records, AdaptationRecord)
    assert adaptation.epoch == 2 and adaptation.parameter == "learning_rate"
    assert (adaptation.old_value, adaptation.new_value) == ("0.001", "0.0001")
    assert (adaptation.agent, adaptation.reason, adaptation.command_id) == ("user:alice", "plateau", "cmd-7")
    assert adaptation.at == by_name[v.ADAPTATION_SPAN].start_time / 1e9

    (end,) = _by_type(result.records, RunEndRecord)
    root = by_name[v.RUN_SPAN]
    assert end.record_id == format(root.context.span_id, "016x")
    assert (end.status, end.epochs, end.error, dict(end.summary)) == ("completed", 4, "", {"r2": 0.5})
    assert end.ended_at == root.end_time / 1e9 and end.started_at == root.start_time / 1e9
    assert (end.run_name, end.experiment) == ("run-007", "exp")


def test_unknown_span_names_are_ignored_and_counted() -> None:
    spans = build_spans(sample_run(1, epochs=1))
    from opentelemetry.sdk.trace import TracerProvider

    other = TracerProvider().get_tracer("someone-else")
    foreign = other.start_span("http.request")
    foreign.end()
    result = translate_traces(encode_spans([*spans, foreign]))
    assert result.ignored == 1 and result.rejected == [] and len(result.records) == len(spans)


def _epoch_span_request(**attrs: object) -> ExportTraceServiceRequest:
    spec = RunSpec(run_id=run_id(3), run_name="r", epochs=[attrs])
    spans = [s for s in build_spans(spec) if s.name == v.EPOCH_SPAN]
    return encode_spans(spans)


GOOD = epoch_attributes(0, loss=1.0, bc=0.1, residual=0.2, data=0.3, lr=1e-3)


@pytest.mark.parametrize(
    ("change", "reason", "needle"),
    [
        ({v.LOSS_TOTAL: "high"}, "bad_attribute", v.LOSS_TOTAL),
        ({v.LOSS_DATA: True}, "bad_attribute", v.LOSS_DATA),
        ({v.EPOCH: "three"}, "bad_attribute", v.EPOCH),
        ({v.EPOCH: -1}, "bad_attribute", v.EPOCH),
        ({v.EPOCH: 2.5}, "bad_attribute", v.EPOCH),
        ({v.EPOCH_ELAPSED: -0.1}, "bad_attribute", v.EPOCH_ELAPSED),
        ({v.RUN_ID: "0" * 31 + "9"}, "bad_ids", "disagrees"),
        ({v.LOSS_TOTAL: "x" * (MAX_STRING_BYTES + 1)}, "missing_attribute", v.LOSS_TOTAL),  # dropped: then missing
    ],
)
def test_bad_epoch_attributes_reject_the_span(change: dict, reason: str, needle: str) -> None:
    result = translate_traces(_epoch_span_request(**{**GOOD, **change}))
    assert result.records == []
    (rejection,) = result.rejected
    assert rejection.reason == reason and rejection.span_name == v.EPOCH_SPAN and needle in rejection.detail


def test_missing_required_attributes_are_rejected() -> None:
    missing_loss = {k: val for k, val in GOOD.items() if k != v.LOSS_TOTAL}
    result = translate_traces(_epoch_span_request(**missing_loss))
    assert [r.reason for r in result.rejected] == ["missing_attribute"] and v.LOSS_TOTAL in result.rejected[0].detail
    spec = sample_run(4, epochs=3)
    spec.adaptations = [{v.EPOCH: 1, v.ADAPTATION_PARAMETER: "learning_rate", v.ADAPTATION_NEW: 1e-4}]  # no agent
    spec.end = {v.RUN_STATUS: "exploded"}
    result = translate_traces(request_for(spec))
    reasons = sorted((r.span_name, r.reason) for r in result.rejected)
    assert reasons == [(v.ADAPTATION_SPAN, "missing_attribute"), (v.RUN_SPAN, "bad_attribute")]
    assert len(_by_type(result.records, EpochRecord)) == 3 and len(_by_type(result.records, RunStartRecord)) == 1


def test_optional_loss_components_and_nonfinite_values() -> None:
    only_total = {v.EPOCH: 0, v.LOSS_TOTAL: float("nan"), v.LEARNING_RATE: float("inf")}
    (record,) = translate_traces(_epoch_span_request(**only_total)).records
    assert math.isnan(record.loss) and math.isinf(record.learning_rate)
    assert math.isnan(record.loss_bc) and math.isnan(record.loss_residual) and math.isnan(record.loss_data)
    assert record.elapsed_s == pytest.approx(0.5)  # falls back to the span duration


def test_bad_ids_reject_only_that_span_and_the_rest_is_accepted() -> None:
    request = request_for(sample_run(5, epochs=4))
    spans = request.resource_spans[0].scope_spans[0].spans
    epoch_spans = [span for span in spans if span.name == v.EPOCH_SPAN]
    epoch_spans[0].trace_id = b"\x00" * 16
    epoch_spans[1].span_id = b""
    epoch_spans[2].trace_id = b"\x01" * 8
    total = len(spans)
    result = translate_traces(request)
    assert sorted(r.reason for r in result.rejected) == ["bad_ids"] * 3
    assert len(result.records) == total - 3
    assert [r.epoch for r in _by_type(result.records, EpochRecord)] == [3]


def test_an_oversized_resource_attribute_costs_only_itself() -> None:
    big = sample_run(6, epochs=1)
    big.resource = {**big.resource, "pinn.blob": "y" * (MAX_STRING_BYTES + 10)}
    result = translate_traces(request_for(big, sample_run(8, epochs=1)))
    assert result.rejected == []
    (drop,) = result.dropped
    assert (drop.reason, drop.span_name) == ("too_large", "(resource)") and "pinn.blob" in drop.detail
    assert {r.run_id for r in result.records} == {run_id(6), run_id(8)}
    (start, _) = _by_type(result.records, RunStartRecord)
    assert "pinn.blob" not in start.resource


def test_metrics_are_translated_into_metric_records() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter(v.INSTRUMENTATION_SCOPE)
    gauge = meter.create_gauge(v.METRIC_LOSS)
    for component in ("total", "boundary", "residual", "data"):
        gauge.set(0.5, {v.LOSS_COMPONENT: component})
    meter.create_counter(v.METRIC_EPOCHS).add(3)
    request = encode_metrics(reader.get_metrics_data())
    result = translate_metrics(request)
    assert (result.metrics, result.points, result.accepted, result.rejected) == (2, 5, 5, [])
    pipeline = Pipeline([])
    outcome = pipeline.handle_metrics(request.SerializeToString())
    assert outcome.ok and outcome.accepted == 5
    assert pipeline.counters.snapshot()["metrics.points.received"] == 5


def test_pipeline_counts_processes_and_writes(tmp_path) -> None:
    def alert_on_high_loss(records: list) -> list:
        return [
            AlertRecord(
                f"high-loss:{r.run_id}:{r.epoch}", "high-loss", r.run_id, r.epoch, r.ended_at, "loss", r.loss, 50.0
            )
            for r in records
            if isinstance(r, EpochRecord) and r.loss > 50.0
        ]

    def broken(records: list) -> list:
        raise RuntimeError("rule bug")

    sink = SqliteSink(tmp_path / "p.db")
    pipeline = Pipeline([sink], processors=[alert_on_high_loss, broken])
    request = request_for(sample_run(1, epochs=4))
    bad = request_for(sample_run(2, epochs=1))
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x00" * 8
    request.MergeFrom(bad)
    result = pipeline.handle_traces(request.SerializeToString())
    assert result.status is ExportStatus.SUCCESS and result.rejected == 1
    spans_total = len(request.resource_spans[0].scope_spans[0].spans) + len(
        request.resource_spans[1].scope_spans[0].spans
    )
    assert result.accepted == spans_total - 1
    counters = pipeline.counters.snapshot()
    assert counters["traces.spans.received"] == spans_total and counters["traces.spans.rejected"] == 1
    assert (
        counters["processors.failed"] == 1 and counters["records.extra"] == 3
    )  # loss > 50: run 1 epochs 0-1, run 2 epoch 0
    assert counters["sink.sqlite.written"] == spans_total - 1 + 3
    assert pipeline.handle_traces(b"\xff\x00 not protobuf").status is ExportStatus.REJECTED
    only_bad = request_for(sample_run(9, epochs=1))
    for span in only_bad.resource_spans[0].scope_spans[0].spans:
        span.trace_id = b""
    assert pipeline.handle_traces(only_bad).status is ExportStatus.REJECTED
    pipeline.shutdown()
    assert pipeline.handle_traces(request).status is ExportStatus.RETRYABLE  # a spool keeps it


@pytest.mark.parametrize(
    ("change", "reason", "needle"),
    [
        ({v.EPOCH_EXTRA_PREFIX + "rms": "x", v.EPOCH_EXTRA_PREFIX + "ok": 2.0}, "bad_attribute", "rms"),
        ({"pinn.note": "x" * (MAX_STRING_BYTES + 1)}, "too_large", "pinn.note"),
        ({v.EPOCH_EXTRA_PREFIX: 1.0}, "bad_attribute", "empty name"),
    ],
)
def test_a_bad_optional_epoch_attribute_costs_only_itself(change: dict, reason: str, needle: str) -> None:
    for fast in (True, False):
        result = translate_traces(_epoch_span_request(**{**GOOD, **change}), fast=fast)
        (record,) = result.records
        assert result.rejected == [] and (record.epoch, record.loss) == (0, 1.0)
        (drop,) = result.dropped
        assert drop.reason == reason and needle in drop.detail and drop.span_name == v.EPOCH_SPAN
        assert dict(record.extra) == ({"ok": 2.0} if "ok" in str(change) else {})


def test_a_bad_hyperparameter_key_costs_that_key_only(tmp_path, caplog) -> None:
    """The run-start span with one bad hyperparameter (an empty name), one map value and a text summary metric:
    the run keeps its name, optimizer, activation and every other hyperparameter; the drops are counted per
    reason in the pipeline's counters (what /metrics-json shows)."""
    spec = sample_run(5, epochs=2)
    request = request_for(spec)
    for span in (s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans):
        if span.name == v.RUN_START_SPAN:
            span.attributes.add(key=v.HYPERPARAMETER_PREFIX).value.string_value = "no name"
            nested = span.attributes.add(key=v.HYPERPARAMETER_PREFIX + "layers").value.kvlist_value.values.add()
            nested.key, nested.value.int_value = "tau", 3
        if span.name == v.RUN_SPAN:
            span.attributes.add(key=v.SUMMARY_PREFIX + "r2_text").value.string_value = "good"
    result = translate_traces(request)
    assert result.rejected == []
    assert sorted(d.reason for d in result.dropped) == ["bad_attribute"] * 3
    (start,) = _by_type(result.records, RunStartRecord)
    assert start.run_name == spec.run_name
    assert {"optimizer", "activation"} <= set(start.hyperparameters)
    assert "" not in start.hyperparameters and "layers" not in start.hyperparameters
    (end,) = _by_type(result.records, RunEndRecord)
    assert "r2_text" not in end.summary and end.status == "completed"

    sink = SqliteSink(tmp_path / "keep.db")
    pipeline = Pipeline([sink])
    outcome = pipeline.handle_traces(request.SerializeToString())
    assert outcome.ok and outcome.rejected == 0
    sink.force_flush()
    sink.shutdown()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "keep.db")
    assert conn.execute("SELECT run_name, optimizer, activation FROM run").fetchone() == (
        spec.run_name, start.hyperparameters["optimizer"], start.hyperparameters["activation"])
    stored = {row[0] for row in conn.execute("SELECT name FROM run_hyperparameter")}
    assert stored == set(start.hyperparameters)
    counters = pipeline.counters.snapshot()
    assert counters["traces.attributes.dropped"] == 3 and counters["traces.attributes.dropped.bad_attribute"] == 3
    assert "traces.spans.rejected" not in counters
