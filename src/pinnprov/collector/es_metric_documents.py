"""Metric records -> documents of the `<prefix>-metrics` time series data stream (TSDS).

Elastic's conventions for OpenTelemetry metrics in a TSDS (the template: pinnprov/core/es_index_templates/metrics.json):
- `@timestamp` is the point's time; the *dimensions* (`time_series_dimension: true`) identify a series: the metric
  name, the resource (`resource_id`, `service.name`, `host.name`), the run (`run_id`) and every point attribute
  (`attributes.*`, keyword). Elasticsearch derives the document id (`_tsid` + `@timestamp`) from them, so the sink
  sends `create` without an `_id`: a point delivered twice is refused with 409, which the sink counts as written.
- metric fields carry their type (`time_series_metric`): `gauge` (gauge points and non-monotonic or delta sums),
  `counter` (monotonic cumulative sums, which Kibana's rate functions expect), `histogram` (the ES `histogram`
  field: `values` ascending, `counts`; OTLP explicit buckets at their midpoints, exponential buckets at the
  midpoints of their base-2^(2^-scale) ranges).
- descriptive fields: `metric.unit`, `metric.kind`, `metric.temporality`, `scope.name`, and the histogram's
  `histogram_count`/`histogram_sum`/`histogram_min`/`histogram_max` (so averages need no bucket arithmetic).
Only one document per series and timestamp exists in a TSDS: the metric name is a dimension for that reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pinnprov.store.records import MetricPointRecord

MAX_DIMENSION_BYTES = 1024
"""Elasticsearch refuses a keyword dimension value longer than this (bytes); longer attribute values are cut."""


def _dimension(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text.encode()) > MAX_DIMENSION_BYTES:
        text = text.encode()[: MAX_DIMENSION_BYTES - 3].decode(errors="ignore") + "..."
    return text


def _midpoints(bounds: list[float], counts: list[int]) -> tuple[list[float], list[int]]:
    """Explicit-bucket histogram -> (values, counts) with one value per non-empty bucket, ascending."""
    values: list[float] = []
    kept: list[int] = []
    for i, count in enumerate(counts):
        if not count:
            continue
        if not bounds:
            value = 0.0
        elif i == 0:
            value = bounds[0] / 2 if bounds[0] > 0 else bounds[0]
        elif i >= len(bounds):
            value = bounds[-1]
        else:
            value = (bounds[i - 1] + bounds[i]) / 2
        if values and value <= values[-1]:  # equal midpoints (degenerate bounds): merge
            kept[-1] += int(count)
            continue
        values.append(value)
        kept.append(int(count))
    return values, kept


def _exponential(point: MetricPointRecord) -> tuple[list[float], list[int]]:
    """Exponential histogram -> (values, counts) ascending: negative buckets, zero, positive buckets."""
    base = 2.0 ** (2.0 ** -(point.scale or 0))
    pairs: list[tuple[float, int]] = []

    def buckets(offset: int | None, counts_json: str | None, sign: float) -> None:
        for k, count in enumerate(json.loads(counts_json or "[]")):
            if count:
                index = (offset or 0) + k
                try:
                    low, high = base**index, base ** (index + 1)
                except OverflowError:
                    continue
                middle = (low + high) / 2
                if math.isfinite(middle):
                    pairs.append((sign * middle, int(count)))

    buckets(point.negative_offset, point.negative_counts, -1.0)
    if point.zero_count:
        pairs.append((0.0, int(point.zero_count)))
    buckets(point.positive_offset, point.positive_counts, 1.0)
    pairs.sort()
    values: list[float] = []
    counts: list[int] = []
    for value, count in pairs:
        if values and value <= values[-1]:
            counts[-1] += count
        else:
            values.append(value)
            counts.append(count)
    return values, counts


def metric_document(point: MetricPointRecord, timestamp: str) -> dict[str, Any]:
    """The TSDS document of one metric point (`timestamp`: its time as ISO 8601)."""
    resource = point.resource
    doc: dict[str, Any] = {
        "@timestamp": timestamp,
        "metric": {"name": point.name, "unit": point.unit, "kind": point.kind},
        "resource_id": point.resource_id,
        "scope": {"name": point.scope} if point.scope else {},
    }
    if point.temporality:
        doc["metric"]["temporality"] = point.temporality
    if point.run_id:
        doc["run_id"] = point.run_id
    if resource is not None:
        if resource.service:
            doc["service"] = {"name": resource.service}
        if resource.host:
            doc["host"] = {"name": resource.host}
    labels = json.loads(point.attributes) if point.attributes and point.attributes != "{}" else {}
    if labels:
        doc["attributes"] = {key.replace(".", "_"): _dimension(value) for key, value in labels.items()
                             if value is not None}
    if not doc["scope"]:
        del doc["scope"]
    if point.kind in ("gauge", "sum"):
        if point.value is not None:
            counter = point.kind == "sum" and point.monotonic and point.temporality == "cumulative"
            doc["counter" if counter else "gauge"] = point.value
        return doc
    if point.kind == "histogram":
        values, counts = _midpoints(json.loads(point.bounds or "[]"), json.loads(point.bucket_counts or "[]"))
    else:
        values, counts = _exponential(point)
    if values:
        doc["histogram"] = {"values": values, "counts": counts}
    for name in ("hist_count", "hist_sum", "hist_min", "hist_max"):
        value = getattr(point, name)
        if value is not None:
            doc[name.replace("hist_", "histogram_")] = value
    return doc
