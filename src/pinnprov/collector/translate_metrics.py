"""OTLP metrics -> metric records: every gauge, sum, histogram and exponential histogram data point is kept.

Beside the span translation (pinnprov/collector/translate.py) and through the same pipeline, delivery and sinks:
metrics are observability rather than provenance, but a run's loss gauges, epoch-duration histogram and system
metrics belong to the run, so they are stored with it (tables `metric_resource`, `metric_point`).

- The run: `pinn.run.id` of the data point, else of its resource (the trainer's MeterProvider resource carries
  it). A point without one is kept under its resource (`run_id` NULL); a malformed run id is dropped from the point
  (counted with its reason, `MetricsResult.dropped`) and the point is kept.
- Identity: `point_id` is the time and a hash of resource, scope, metric name, kind and attributes, so a
  re-delivered request writes nothing new (sinks insert a known key as a no-op).
- Validation per point, lenient per request: a metric without a name or data, a point without a time, or
  unreadable attributes reject that metric or point (counted, logged at a limited rate); the rest is kept.
  Summary points (a legacy kind no OTel SDK produces for pinnprov's instruments) are ignored and counted.
- Non-finite numbers (a NaN gauge) become None: NULL in SQL, left out in Elasticsearch.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.sdk.resources import HOST_NAME, SERVICE_NAME

from pinnprov.collector.otlp_values import MAX_ATTRIBUTES, MAX_STRING_BYTES, AttributeProblem, Plain, attributes
from pinnprov.core import vocabulary as v
from pinnprov.store.records import MetricPointRecord, MetricResourceRecord, ProvRecord

KINDS = {"gauge": "gauge", "sum": "sum", "histogram": "histogram", "exponential_histogram": "exponential_histogram"}
"""OTLP `Metric.data` cases that are stored -> the stored kind."""
MAX_NAME = 256
MAX_UNIT = 64
_TEMPORALITY = {
    AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA: "delta",
    AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative",
}
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK


@dataclass(frozen=True)
class MetricProblem:
    """Why a metric or data point (or one attribute of it) was not kept."""

    reason: str  # empty_metric, bad_metric, bad_time, bad_attribute, bad_resource, unsupported_kind
    name: str  # metric name
    detail: str


@dataclass
class MetricsResult:
    """The records of one request, with what was refused (`rejected`: points) and dropped (attributes)."""

    records: list[ProvRecord] = field(default_factory=list)
    metrics: int = 0
    points: int = 0  # data points received
    accepted: int = 0  # data points kept
    ignored: int = 0  # data points of kinds that are not stored (summary)
    rejected: list[MetricProblem] = field(default_factory=list)
    dropped: list[MetricProblem] = field(default_factory=list)


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=lambda item: item.hex() if isinstance(item, bytes) else str(item)).encode
"""Attributes as canonical JSON (sorted keys): the same attributes always give the same text and point id."""


_string = json.encoder.encode_basestring  # the C encoder of a JSON string (ensure_ascii=False)


def _json(values: Mapping[str, Plain]) -> str:
    """`_encode(values)`, by hand for the common flat case (strings, integers, finite floats, booleans): the same
    text at a third of the cost (bench/metrics_ingest.py)."""
    parts = []
    for key in sorted(values):
        value = values[key]
        kind = type(value)
        if isinstance(value, str) and kind is str:
            text = _string(value)
        elif isinstance(value, int) and kind is int:
            text = int.__repr__(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif isinstance(value, float) and math.isfinite(value):
            text = float.__repr__(value)
        else:
            return _encode(values)
        parts.append(f"{_string(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _hash(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _resource(resource_metrics: Any, result: MetricsResult, now: float) -> MetricResourceRecord:
    attrs = attributes(resource_metrics.resource.attributes)
    run_id = attrs.get(v.RUN_ID)
    if run_id is not None and not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        result.dropped.append(MetricProblem("bad_attribute", "(resource)", f"{v.RUN_ID} is not 32 hex digits: "
                                                                          f"{str(run_id)[:80]!r}"))
        run_id = None
    text = _json(attrs)
    service, host = attrs.get(SERVICE_NAME), attrs.get(HOST_NAME)
    return MetricResourceRecord(_hash(text), run_id, str(service or ""), str(host or ""), text, now)


def translate_metrics(request: ExportMetricsServiceRequest) -> MetricsResult:
    """Translate every data point of an OTLP metrics request; never raises for bad content."""
    result = MetricsResult()
    now = time.time()
    for resource_metrics in request.resource_metrics:
        try:
            resource = _resource(resource_metrics, result, now)
        except AttributeProblem as problem:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    result.rejected.append(MetricProblem("bad_resource", metric.name, str(problem)))
                    result.points += _point_count(metric)
            continue
        result.records.append(resource)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope.name
            for metric in scope_metrics.metrics:
                _metric(metric, scope, resource, result)
    return result


def _point_count(metric: Metric) -> int:
    kind = metric.WhichOneof("data")
    return 0 if kind is None else len(getattr(metric, kind).data_points)


def _metric(metric: Metric, scope: str, resource: MetricResourceRecord, result: MetricsResult) -> None:
    kind = metric.WhichOneof("data")
    if kind is None:
        result.rejected.append(MetricProblem("empty_metric", metric.name, "metric has no data"))
        return
    result.metrics += 1
    data = getattr(metric, kind)
    result.points += len(data.data_points)
    stored = KINDS.get(kind)
    if stored is None:
        result.ignored += len(data.data_points)
        return
    name, unit = metric.name, metric.unit
    problem = ("metric has no name" if not name else f"name longer than {MAX_NAME}" if len(name) > MAX_NAME
               else f"unit longer than {MAX_UNIT}" if len(unit) > MAX_UNIT else "")
    if problem:
        result.rejected.extend(MetricProblem("bad_metric", name[:MAX_NAME], problem) for _ in data.data_points)
        return
    temporality = _TEMPORALITY.get(data.aggregation_temporality) if stored != "gauge" else None
    monotonic = int(data.is_monotonic) if stored == "sum" else None
    records = result.records
    resource_id, resource_run = resource.resource_id, resource.run_id
    key_prefix = f"{resource_id}\x00{scope}\x00{name}\x00{stored}\x00"
    # The hot loop (bench/metrics_ingest.py): positional records, one encoder, bounds encoded once per metric.
    head = (resource_id, resource_run, name, unit, stored, temporality, monotonic, scope)
    bounds_text: dict[tuple[float, ...], str] = {}
    no_histogram = (None,) * _HISTOGRAM_FIELDS + (resource,)
    for point in data.data_points:
        nanos = point.time_unix_nano
        if not nanos:
            result.rejected.append(MetricProblem("bad_time", name, "data point without time_unix_nano"))
            continue
        if point.attributes:
            attrs = _flat_attributes(point.attributes)
            if attrs is None:  # arrays, maps, bytes, long strings, many attributes: the general reader decides
                try:
                    attrs = attributes(point.attributes)
                except AttributeProblem as error:
                    result.rejected.append(MetricProblem("bad_attribute", name, str(error)))
                    continue
            row_head = head
            own = attrs.get(v.RUN_ID)
            if own is not None:
                if isinstance(own, str) and _RUN_ID.fullmatch(own):
                    row_head = (resource_id, own, *head[2:])
                else:
                    result.dropped.append(MetricProblem("bad_attribute", name, f"{v.RUN_ID} is not 32 hex digits: "
                                                                               f"{str(own)[:80]!r}"))
                    del attrs[v.RUN_ID]
            text = _json(attrs) if attrs else "{}"
        else:
            row_head, text = head, "{}"
        # Time first, then a hash of the rest: keys arrive nearly in order, so SQLite appends to the primary-key
        # index instead of dirtying a random page per point (a fully random key cost about a third more CPU).
        series = f"{key_prefix}{text}"
        digest = _SERIES_IDS.get(series)
        if digest is None:
            if len(_SERIES_IDS) >= _MAX_SERIES_IDS:
                _SERIES_IDS.clear()
            digest = _SERIES_IDS[series] = hashlib.blake2b(series.encode("utf-8", "surrogatepass"),
                                                           digest_size=8).hexdigest()
        point_id = f"{nanos:016x}{digest}"
        started = point.start_time_unix_nano / 1e9 if point.start_time_unix_nano else None
        if stored == "gauge" or stored == "sum":
            number = point.WhichOneof("value")
            value = None if number is None or point.flags & _NO_RECORDED_VALUE else (
                float(point.as_int) if number == "as_int" else _finite(point.as_double))
            # tuple.__new__ skips the NamedTuple's argument handling: a fifth of the cost of a point's record
            records.append(_new(MetricPointRecord, (point_id, *row_head, started, nanos / 1e9, text, value,
                                                    *no_histogram)))
        elif stored == "histogram":
            total, low, high = _stats(point)
            bounds = tuple(point.explicit_bounds)
            encoded = bounds_text.get(bounds)
            if encoded is None:
                encoded = bounds_text[bounds] = _numbers(bounds)
            records.append(MetricPointRecord(point_id, *row_head, started, nanos / 1e9, text, None, int(point.count),
                                             total, low, high, encoded, _numbers(point.bucket_counts),
                                             resource=resource))
        else:
            total, low, high = _stats(point)
            records.append(MetricPointRecord(
                point_id, *row_head, started, nanos / 1e9, text, None, int(point.count), total, low, high, None, None,
                int(point.scale), int(point.zero_count), int(point.positive.offset),
                _numbers(point.positive.bucket_counts), int(point.negative.offset),
                _numbers(point.negative.bucket_counts), resource=resource))
        result.accepted += 1


_new = tuple.__new__
_SERIES_IDS: dict[str, str] = {}
"""Series (resource, scope, metric, kind, attributes) -> the hash in its points' ids: a series sends a point per
export, and a dictionary lookup costs a fraction of the hash. Cleared when full (it is only a cache)."""
_MAX_SERIES_IDS = 100_000
_SHORT_STRING = MAX_STRING_BYTES // 4  # this many characters are at most MAX_STRING_BYTES in UTF-8


def _flat_attributes(pairs: Any) -> dict[str, Plain] | None:
    """Scalar attributes (string, integer, double, boolean) read directly; None for anything else, which
    `otlp_values.attributes` reads (and refuses) as for spans."""
    if len(pairs) > MAX_ATTRIBUTES:
        return None
    result: dict[str, Plain] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            text = value.string_value
            if len(text) > _SHORT_STRING:
                return None
            result[pair.key] = text
        elif kind == "int_value":
            result[pair.key] = value.int_value
        elif kind == "double_value":
            result[pair.key] = value.double_value
        elif kind == "bool_value":
            result[pair.key] = value.bool_value
        else:
            return None
    return result
_HISTOGRAM_FIELDS = len(MetricPointRecord._fields) - MetricPointRecord._fields.index("hist_count") - 1
"""The fields after `value` but `resource`: None in gauge and sum points."""


def _numbers(values: Iterable[float | int]) -> str:
    """A JSON list of finite numbers (bounds and bucket counts; OTLP bounds are finite), faster than json.dumps."""
    return "[" + ", ".join(map(repr, values)) + "]"


def _stats(point: Any) -> tuple[float | None, float | None, float | None]:
    """sum, min and max of a histogram point (each optional in OTLP)."""
    return tuple(_finite(getattr(point, name)) if point.HasField(name) else None  # type: ignore[return-value]
                 for name in ("sum", "min", "max"))
