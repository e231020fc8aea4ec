"""The epoch-span rules (pinnprov/collector/epoch_rules.py): one set, applied by both translation paths.

Each rule is broken in turn on an otherwise ordinary epoch span: the fast path must leave the span to the general
path (it never decides a rejection) and the general path must reject it for that rule, with the rule's reason and
explanation, whether the fast path ran first or not. And the fast path must consult every rule's predicate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prov_builders import request_for, sample_run

from pinnprov.collector import epoch_rules as r
from pinnprov.collector import translate_fast
from pinnprov.collector.otlp_values import to_any_value
from pinnprov.collector.translate import translate_traces
from pinnprov.core import vocabulary as v


def _set(span: Span, key: str, value: Any) -> None:
    for pair in span.attributes:
        if pair.key == key:
            pair.value.CopyFrom(to_any_value(value))
            return
    span.attributes.add(key=key).value.CopyFrom(to_any_value(value))


def _no_end(span: Span) -> None:
    span.end_time_unix_nano = span.start_time_unix_nano - 1


BREAKS: dict[str, tuple[Callable[[Span], None], Callable[[Span], tuple[Any, ...]]]] = {
    # rule name -> (break the span, the values the rule sees on the broken span)
    "trace_id": (lambda s: setattr(s, "trace_id", bytes(16)), lambda s: (s.trace_id,)),
    "span_id": (lambda s: setattr(s, "span_id", b"\x01" * 4), lambda s: (s.span_id,)),
    "run_id_agrees": (lambda s: _set(s, v.RUN_ID, "f" * 32), lambda s: ("f" * 32, s.trace_id.hex())),
    "has_start": (lambda s: setattr(s, "start_time_unix_nano", 0), lambda s: (0,)),
    "ends_after_start": (_no_end, lambda s: (s.start_time_unix_nano, s.end_time_unix_nano)),
    "epoch_in_range": (lambda s: _set(s, v.EPOCH, r.MAX_EPOCH + 1), lambda s: (r.MAX_EPOCH + 1,)),
    "elapsed_valid": (lambda s: _set(s, v.EPOCH_ELAPSED, math.inf), lambda s: (math.inf,)),
}


def _epoch_request() -> tuple[ExportTraceServiceRequest, Span]:
    request = request_for(sample_run(3, epochs=1))
    spans = request.resource_spans[0].scope_spans[0].spans
    (epoch,) = [span for span in spans if span.name == v.EPOCH_SPAN]
    del spans[:]
    spans.append(epoch)
    return request, spans[0]


def test_every_rule_has_a_break() -> None:
    assert {rule.name for rule in r.EPOCH_SPAN_RULES} == set(BREAKS)


@pytest.mark.parametrize("rule", r.EPOCH_SPAN_RULES, ids=lambda rule: rule.name)
def test_both_paths_refuse_a_span_for_each_rule(rule: r.Rule) -> None:
    request, span = _epoch_request()
    assert translate_fast.EpochFastPath().record(span) is not None  # ordinary before the break
    breaks, seen = BREAKS[rule.name]
    breaks(span)
    assert not rule.holds(*seen(span))
    assert translate_fast.EpochFastPath().record(span) is None, "the fast path took a span that breaks the rule"
    for fast in (True, False):
        result = translate_traces(request, fast=fast)
        assert result.records == []
        (rejection,) = result.rejected
        assert (rejection.reason, rejection.detail) == (rule.reason, rule.explain(*seen(span))), fast


@pytest.mark.parametrize("rule", r.EPOCH_SPAN_RULES, ids=lambda rule: rule.name)
def test_the_fast_path_consults_every_rule(rule: r.Rule, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the rule's predicate refusing everything, an ordinary span no longer takes the fast path."""
    bound = [name for name, value in vars(translate_fast).items() if value is rule.holds]
    assert bound, f"translate_fast does not use rule {rule.name}"
    _, span = _epoch_request()
    _set(span, v.RUN_ID, span.trace_id.hex().upper())  # a claim that agrees: the run id rule is consulted too
    assert translate_fast.EpochFastPath().record(span) is not None
    for name in bound:
        monkeypatch.setattr(translate_fast, name, lambda *values: False)
    assert translate_fast.EpochFastPath().record(span) is None


def test_check_raises_with_the_reason() -> None:
    with pytest.raises(r.Rejected, match="must be in") as caught:
        r.EPOCH_IN_RANGE.check(-1)
    assert caught.value.reason == "bad_attribute"
    assert r.span_times(2_000_000_000, 0) == (2.0, 2.0)  # no end: an instant
