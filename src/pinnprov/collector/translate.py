"""OTLP -> PROV records: the one translation path for the embedded exporter and the network receivers.

Validation keeps what can be kept. A span with missing or all-zero ids, or a *required* attribute that is
missing or of the wrong type (a string loss, an epoch number of -1), is *rejected* (counted, logged at a limited
rate, dead-lettered by delivery); the other spans of the same request are still translated. An *optional*
attribute that is invalid (a hyperparameter with an empty name, a map where a scalar belongs, an oversized
string, a text summary metric, a negative pick count) is *dropped* with its reason (`TranslationResult.dropped`,
counted per reason under `traces.attributes.dropped.*` in /metrics-json) and the rest of its span is stored: a
bad hyperparameter key costs that key only. Spans with names outside the vocabulary are *ignored* (counted), so
other instrumentation can share the pipe.

Non-finite numbers: NaN and +-inf losses are legitimate facts about a diverging run. They are kept in the
records as floats; SQL stores them as NULL plus a marker column (see pinnprov/store/rows.py), so nothing crashes.
A missing optional loss component (a plain Keras user has no L_BC) is recorded as NaN, i.e. unknown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import HOST_NAME, SERVICE_NAME

from pinnprov.collector import translate_products as products
from pinnprov.collector.epoch_rules import (
    ELAPSED_VALID,
    EPOCH_IN_RANGE,
    RUN_ID_AGREES,
    SPAN_ID,
    TRACE_ID,
    Rejected,
    span_times,
)
from pinnprov.collector.otlp_values import (
    MAX_ATTRIBUTES,
    AttributeProblem,
    Plain,
    attributes,
    get_float,
    get_int,
    get_str,
    plain,
    scalar,
)
from pinnprov.collector.translate_fast import EpochFastPath
from pinnprov.collector.translate_products import PRODUCT_SPANS
from pinnprov.core import vocabulary as v
from pinnprov.core.fields import MEASURED_EPOCH_FIELDS
from pinnprov.store.records import (
    AdaptationRecord,
    EpochRecord,
    ProvRecord,
    RunEndRecord,
    RunStartRecord,
    ScalarValue,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

RUN_STATUSES = frozenset({"completed", "stopped", "failed"})


@dataclass(frozen=True)
class Rejection:
    """Why one span (or data point) was refused."""

    reason: str  # short machine-friendly category: bad_ids, bad_attribute, missing_attribute, too_large, ...
    span_name: str
    detail: str


@dataclass
class TranslationResult:
    records: list[ProvRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    ignored: int = 0  # spans whose names are not in the vocabulary
    dropped: list[Rejection] = field(default_factory=list)  # invalid optional attributes left out of kept spans


Drops = list[Rejection]
"""Where translation notes the optional attributes it drops (reason, span name, which attribute and why)."""


def _problem_reason(text: str) -> str:
    return "missing_attribute" if text.startswith("missing") else "too_large" if "limit" in text else "bad_attribute"


def lenient_attributes(pairs: Sequence[KeyValue], drops: Drops, span_name: str) -> dict[str, Plain]:
    """`attributes`, except that an attribute whose value cannot be read (oversized, unsupported) is dropped and
    noted; only too many attributes still raise AttributeProblem."""
    try:
        return attributes(pairs)
    except AttributeProblem:
        if len(pairs) > MAX_ATTRIBUTES:
            raise
    result: dict[str, Plain] = {}
    for pair in pairs:
        try:
            result[pair.key] = plain(pair.value, pair.key)
        except AttributeProblem as problem:
            result.pop(pair.key, None)
            drops.append(Rejection(_problem_reason(str(problem)), span_name, str(problem)))
    return result


def _optional(drops: Drops, span_name: str, read: Callable[[], _T], default: _T) -> _T:
    """`read()`, or `default` with the problem noted when the optional attribute it reads is invalid."""
    try:
        return read()
    except AttributeProblem as problem:
        drops.append(Rejection("bad_attribute", span_name, str(problem)))
    except Rejected as problem:
        drops.append(Rejection(problem.reason, span_name, problem.detail))
    return default


class _RateLimitedLog:
    """Logs each rejection reason at most once per interval and says how many were suppressed.

    Why: a misbehaving client can send thousands of bad spans per second; the log must stay readable.
    """

    def __init__(self, interval_s: float = 10.0, what: str = "rejected span") -> None:
        self._interval = interval_s
        self._what = what
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, rejection: Rejection) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(rejection.reason)
            if last is not None and now - last < self._interval:
                self._suppressed[rejection.reason] = self._suppressed.get(rejection.reason, 0) + 1
                return
            suppressed = self._suppressed.pop(rejection.reason, 0)
            self._last[rejection.reason] = now
        more = f" ({suppressed} similar rejections suppressed)" if suppressed else ""
        log.warning("%s %r: %s: %s%s", self._what, rejection.span_name, rejection.reason, rejection.detail, more)


_LOG = _RateLimitedLog()
_DROP_LOG = _RateLimitedLog(what="dropped an attribute of span")


def _check_ids(span: Span) -> tuple[str, str]:
    TRACE_ID.check(span.trace_id)
    SPAN_ID.check(span.span_id)
    return span.trace_id.hex(), span.span_id.hex()


def _check_run_id(attrs: Mapping[str, Plain], run_id: str) -> None:
    RUN_ID_AGREES.check(get_str(attrs, v.RUN_ID), run_id)


def _check_times(span: Span) -> tuple[float, float]:
    return span_times(span.start_time_unix_nano, span.end_time_unix_nano)


def _scalars(values: Mapping[str, Plain], drops: Drops, span_name: str, prefix: str = "") -> dict[str, ScalarValue]:
    """The scalar values under `prefix` (prefix removed); an empty name or a non-scalar value is dropped."""
    kept: dict[str, ScalarValue] = {}
    for key, value in values.items():
        if not key.startswith(prefix) or value is None:
            continue
        if prefix and key == prefix:
            drops.append(Rejection("bad_attribute", span_name, f"hyperparameter with empty name ({prefix!r})"))
            continue
        try:
            kept[key[len(prefix) :]] = scalar(value, key)
        except AttributeProblem as problem:
            drops.append(Rejection("bad_attribute", span_name, str(problem)))
    return kept


def _picks(attrs: Mapping[str, Plain]) -> int:
    picks = get_int(attrs, v.DATASET_PICKS)
    if picks < 0:
        raise Rejected("bad_attribute", f"{v.DATASET_PICKS} must be >= 0, got {picks}")
    return picks


def _run_start(
    span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain], resource: Mapping[str, Plain], drops: Drops
) -> RunStartRecord:
    started, _ = _check_times(span)
    name = span.name

    def text(values: Mapping[str, Plain], key: str) -> str:
        return _optional(drops, name, lambda: get_str(values, key), "")

    return RunStartRecord(
        run_id=run_id,
        record_id=span_id,
        run_name=get_str(attrs, v.RUN_NAME, required=True),
        experiment=text(attrs, v.EXPERIMENT),
        started_at=started,
        hyperparameters=_scalars(attrs, drops, name, v.HYPERPARAMETER_PREFIX),
        dataset_name=text(attrs, v.DATASET_NAME),
        dataset_sha256=text(attrs, v.DATASET_SHA256),
        dataset_picks=_optional(drops, name, lambda: _picks(attrs), 0),
        dataset_source=text(attrs, v.DATASET_SOURCE),
        host=text(resource, HOST_NAME),
        service=text(resource, SERVICE_NAME),
        resource=_scalars(resource, drops, name),
        **products.resume_fields(attrs),  # type: ignore[arg-type]
    )


def _epoch_number(attrs: Mapping[str, Plain]) -> int:
    epoch = get_int(attrs, v.EPOCH, required=True)
    EPOCH_IN_RANGE.check(epoch)
    return epoch


def _numbers(attrs: Mapping[str, Plain], prefix: str, drops: Drops, span_name: str) -> dict[str, float]:
    """The numeric attributes under `prefix` (prefix removed); a non-number or an empty name is dropped."""
    kept: dict[str, float] = {}
    for key in attrs:
        if not key.startswith(prefix):
            continue
        if key == prefix:
            drops.append(Rejection("bad_attribute", span_name, f"attribute with empty name ({prefix!r})"))
            continue
        try:
            kept[key[len(prefix) :]] = get_float(attrs, key, required=True)
        except AttributeProblem as problem:
            drops.append(Rejection("bad_attribute", span_name, str(problem)))
    return kept


def _epoch(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain], drops: Drops) -> EpochRecord:
    started, ended = _check_times(span)
    elapsed = get_float(attrs, v.EPOCH_ELAPSED, default=ended - started)
    ELAPSED_VALID.check(elapsed)
    extra = _numbers(attrs, v.EPOCH_EXTRA_PREFIX, drops, span.name)
    epoch = _epoch_number(attrs)
    measured = {
        field.name: get_float(attrs, field.attribute, required=field.required)
        for field in MEASURED_EPOCH_FIELDS
        if field.attribute != v.EPOCH_ELAPSED
    }
    return EpochRecord(
        run_id=run_id, record_id=span_id, epoch=epoch, started_at=started, ended_at=ended, elapsed_s=elapsed,
        extra=extra, **measured,
    )


def _text(attrs: Mapping[str, Plain], key: str, *, required: bool = False) -> str:
    """A value recorded as text (old/new values may be numbers, strings or booleans)."""
    value = attrs.get(key)
    if value is None:
        if required:
            raise AttributeProblem(f"missing required attribute {key!r}")
        return ""
    value = scalar(value, key)
    return repr(value) if isinstance(value, float) else str(value)


def _adaptation(
    span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain], drops: Drops
) -> AdaptationRecord:
    started, _ = _check_times(span)
    return AdaptationRecord(
        run_id=run_id,
        record_id=span_id,
        epoch=_epoch_number(attrs),
        at=started,
        parameter=get_str(attrs, v.ADAPTATION_PARAMETER, required=True),
        old_value=_text(attrs, v.ADAPTATION_OLD),
        new_value=_text(attrs, v.ADAPTATION_NEW, required=True),
        agent=get_str(attrs, v.ADAPTATION_AGENT, required=True),
        reason=_optional(drops, span.name, lambda: get_str(attrs, v.ADAPTATION_REASON), ""),
        command_id=_optional(drops, span.name, lambda: get_str(attrs, v.ADAPTATION_COMMAND_ID), ""),
    )


def _run_end(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain], drops: Drops) -> RunEndRecord:
    started, ended = _check_times(span)
    status = get_str(attrs, v.RUN_STATUS)
    if not status and span.status.code == Status.STATUS_CODE_ERROR:
        status = "failed"  # the root span says it failed even if the status attribute never got set
    if status not in RUN_STATUSES:
        raise Rejected("bad_attribute", f"{v.RUN_STATUS} must be one of {sorted(RUN_STATUSES)}, got {status!r}")
    epochs = get_int(attrs, v.RUN_EPOCHS)
    if epochs < 0:
        raise Rejected("bad_attribute", f"{v.RUN_EPOCHS} must be >= 0, got {epochs}")
    summary = _numbers(attrs, v.SUMMARY_PREFIX, drops, span.name)
    return RunEndRecord(
        run_id=run_id,
        record_id=span_id,
        ended_at=ended,
        status=status,
        epochs=epochs,
        error=get_str(attrs, v.RUN_ERROR) or (span.status.message if status == "failed" else ""),
        summary=summary,
        run_name=get_str(attrs, v.RUN_NAME),
        experiment=get_str(attrs, v.EXPERIMENT),
        started_at=started,
    )


def translate_span(span: Span, resource: Mapping[str, Plain], dropped: Drops | None = None) -> ProvRecord | None:
    """One span -> one record, or None for a span outside the vocabulary; raises Rejected when invalid.

    Invalid optional attributes are left out and noted in `dropped` (when given); the record is kept.
    """
    if span.name not in (v.RUN_START_SPAN, v.EPOCH_SPAN, v.ADAPTATION_SPAN, v.RUN_SPAN, *PRODUCT_SPANS):
        return None
    run_id, span_id = _check_ids(span)
    drops: Drops = []
    record: ProvRecord
    try:
        attrs = lenient_attributes(span.attributes, drops, span.name)
        _check_run_id(attrs, run_id)
        if span.name == v.RUN_START_SPAN:
            record = _run_start(span, run_id, span_id, attrs, resource, drops)
        elif span.name == v.EPOCH_SPAN:
            record = _epoch(span, run_id, span_id, attrs, drops)
        elif span.name == v.ADAPTATION_SPAN:
            record = _adaptation(span, run_id, span_id, attrs, drops)
        elif span.name == v.ARTIFACT_SPAN:
            record = products.artifact(span, run_id, span_id, attrs)
        elif span.name == v.SNAPSHOT_SPAN:
            record = products.snapshot(span, run_id, span_id, attrs)
        else:
            record = _run_end(span, run_id, span_id, attrs, drops)
    except AttributeProblem as problem:
        text = str(problem)
        raise Rejected(_problem_reason(text), text) from None
    if dropped is not None:
        dropped.extend(drops)
    for drop in drops:
        _DROP_LOG.warn(drop)
    return record


def translate_traces(request: ExportTraceServiceRequest, *, fast: bool = True) -> TranslationResult:
    """Translate every span of an OTLP trace request; never raises for bad content.

    Epoch spans go through pinnprov/collector/translate_fast.py first; whatever it does not take as ordinary and
    valid (and every other span) goes through `translate_span`. `fast=False` skips the fast path (tests
    prove both give the same result).
    """
    result = TranslationResult()
    records = result.records
    epoch_span = v.EPOCH_SPAN if fast else None
    fast_path = EpochFastPath()
    for resource_spans in request.resource_spans:
        try:
            resource = lenient_attributes(resource_spans.resource.attributes, result.dropped, "(resource)")
        except AttributeProblem as problem:
            spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
            for span in spans:
                result.rejected.append(Rejection("bad_resource", span.name, str(problem)))
            continue
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if span.name == epoch_span:
                    fast_record = fast_path.record(span)
                    if fast_record is not None:
                        records.append(fast_record)
                        continue
                try:
                    record = translate_span(span, resource, result.dropped)
                except Rejected as reject:
                    rejection = Rejection(reject.reason, span.name, reject.detail)
                    result.rejected.append(rejection)
                    _LOG.warn(rejection)
                    continue
                if record is None:
                    result.ignored += 1
                else:
                    records.append(record)
    return result
