"""OTLP -> PROV records: the one translation path for the embedded exporter and the network receivers.

Validation is strict per span and lenient per request: a span with missing or all-zero ids, a wrong value
type (a string loss), an oversized attribute or a missing required attribute is *rejected* (counted, logged
at a limited rate); the other spans of the same request are still translated. Spans with names outside the
vocabulary are *ignored* (counted), so other instrumentation can share the pipe.

Non-finite numbers: NaN and +-inf losses are legitimate facts about a diverging run. They are kept in the
records as floats; SQL stores them as NULL plus a marker column (see pinnprov/store/rows.py), so nothing crashes.
A missing optional loss component (a plain Keras user has no L_BC) is recorded as NaN, i.e. unknown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
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
from pinnprov.collector.otlp_values import AttributeProblem, Plain, attributes, get_float, get_int, get_str, scalar
from pinnprov.collector.translate_fast import EpochFastPath
from pinnprov.collector.translate_products import PRODUCT_SPANS
from pinnprov.core import vocabulary as v
from pinnprov.core.fields import MEASURED_EPOCH_FIELDS
from pinnprov.store.records import AdaptationRecord, EpochRecord, ProvRecord, RunEndRecord, RunStartRecord

log = logging.getLogger(__name__)

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


class _RateLimitedLog:
    """Logs each rejection reason at most once per interval and says how many were suppressed.

    Why: a misbehaving client can send thousands of bad spans per second; the log must stay readable.
    """

    def __init__(self, interval_s: float = 10.0) -> None:
        self._interval = interval_s
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
        log.warning("rejected span %r: %s: %s%s", rejection.span_name, rejection.reason, rejection.detail, more)


_LOG = _RateLimitedLog()


def _check_ids(span: Span) -> tuple[str, str]:
    TRACE_ID.check(span.trace_id)
    SPAN_ID.check(span.span_id)
    return span.trace_id.hex(), span.span_id.hex()


def _check_run_id(attrs: Mapping[str, Plain], run_id: str) -> None:
    RUN_ID_AGREES.check(get_str(attrs, v.RUN_ID), run_id)


def _check_times(span: Span) -> tuple[float, float]:
    return span_times(span.start_time_unix_nano, span.end_time_unix_nano)


def _run_start(
    span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain], resource: Mapping[str, Plain]
) -> RunStartRecord:
    started, _ = _check_times(span)
    hyper = {
        key[len(v.HYPERPARAMETER_PREFIX) :]: scalar(value, key)
        for key, value in attrs.items()
        if key.startswith(v.HYPERPARAMETER_PREFIX) and value is not None
    }
    if "" in hyper:
        raise Rejected("bad_attribute", f"hyperparameter with empty name ({v.HYPERPARAMETER_PREFIX!r})")
    picks = get_int(attrs, v.DATASET_PICKS)
    if picks < 0:
        raise Rejected("bad_attribute", f"{v.DATASET_PICKS} must be >= 0, got {picks}")
    return RunStartRecord(
        run_id=run_id,
        record_id=span_id,
        run_name=get_str(attrs, v.RUN_NAME, required=True),
        experiment=get_str(attrs, v.EXPERIMENT),
        started_at=started,
        hyperparameters=hyper,
        dataset_name=get_str(attrs, v.DATASET_NAME),
        dataset_sha256=get_str(attrs, v.DATASET_SHA256),
        dataset_picks=picks,
        dataset_source=get_str(attrs, v.DATASET_SOURCE),
        host=get_str(resource, HOST_NAME),
        service=get_str(resource, SERVICE_NAME),
        resource={key: scalar(value, key) for key, value in resource.items() if value is not None},
        **products.resume_fields(attrs),  # type: ignore[arg-type]
    )


def _epoch_number(attrs: Mapping[str, Plain]) -> int:
    epoch = get_int(attrs, v.EPOCH, required=True)
    EPOCH_IN_RANGE.check(epoch)
    return epoch


def _epoch(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain]) -> EpochRecord:
    started, ended = _check_times(span)
    elapsed = get_float(attrs, v.EPOCH_ELAPSED, default=ended - started)
    ELAPSED_VALID.check(elapsed)
    extra = {
        key[len(v.EPOCH_EXTRA_PREFIX) :]: get_float(attrs, key, required=True)
        for key in attrs
        if key.startswith(v.EPOCH_EXTRA_PREFIX)
    }
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


def _adaptation(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain]) -> AdaptationRecord:
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
        reason=get_str(attrs, v.ADAPTATION_REASON),
        command_id=get_str(attrs, v.ADAPTATION_COMMAND_ID),
    )


def _run_end(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain]) -> RunEndRecord:
    started, ended = _check_times(span)
    status = get_str(attrs, v.RUN_STATUS)
    if not status and span.status.code == Status.STATUS_CODE_ERROR:
        status = "failed"  # the root span says it failed even if the status attribute never got set
    if status not in RUN_STATUSES:
        raise Rejected("bad_attribute", f"{v.RUN_STATUS} must be one of {sorted(RUN_STATUSES)}, got {status!r}")
    epochs = get_int(attrs, v.RUN_EPOCHS)
    if epochs < 0:
        raise Rejected("bad_attribute", f"{v.RUN_EPOCHS} must be >= 0, got {epochs}")
    summary = {
        key[len(v.SUMMARY_PREFIX) :]: get_float(attrs, key, required=True)
        for key in attrs
        if key.startswith(v.SUMMARY_PREFIX)
    }
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


def translate_span(span: Span, resource: Mapping[str, Plain]) -> ProvRecord | None:
    """One span -> one record, or None for a span outside the vocabulary; raises Rejected when invalid."""
    if span.name not in (v.RUN_START_SPAN, v.EPOCH_SPAN, v.ADAPTATION_SPAN, v.RUN_SPAN, *PRODUCT_SPANS):
        return None
    run_id, span_id = _check_ids(span)
    try:
        attrs = attributes(span.attributes)
        _check_run_id(attrs, run_id)
        if span.name == v.RUN_START_SPAN:
            return _run_start(span, run_id, span_id, attrs, resource)
        if span.name == v.EPOCH_SPAN:
            return _epoch(span, run_id, span_id, attrs)
        if span.name == v.ADAPTATION_SPAN:
            return _adaptation(span, run_id, span_id, attrs)
        if span.name == v.ARTIFACT_SPAN:
            return products.artifact(span, run_id, span_id, attrs)
        if span.name == v.SNAPSHOT_SPAN:
            return products.snapshot(span, run_id, span_id, attrs)
        return _run_end(span, run_id, span_id, attrs)
    except AttributeProblem as problem:
        text = str(problem)
        reason = (
            "missing_attribute" if text.startswith("missing") else "too_large" if "limit" in text else "bad_attribute"
        )
        raise Rejected(reason, text) from None


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
            resource = attributes(resource_spans.resource.attributes)
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
                    record = translate_span(span, resource)
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
