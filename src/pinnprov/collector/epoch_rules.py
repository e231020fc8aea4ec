"""The validation rules of epoch spans, once: both translation paths apply every one of them.

pinnprov/collector/translate.py (the general path, every span kind) calls `Rule.check`, which raises `Rejected`
with the rule's reason and a one-line explanation; pinnprov/collector/translate_fast.py (epoch spans, one scan of
the attributes) calls `Rule.holds` and, when a rule fails, leaves the span to the general path, which rejects it
with the same rule. The fast path may skip decoding work, never a rule: tests/collector/test_epoch_rules.py
breaks each rule in turn and checks that both paths refuse the span for it.

The rules on ids and times hold for every span of the vocabulary; the others for epoch spans (the epoch number
also for adaptation spans). Decoding rules (a number where a number belongs, a required attribute present, string
sizes, the number of attributes) are those of pinnprov/collector/otlp_values.py and the field schema
(pinnprov/core/fields.py), whose limits and flags the fast path reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pinnprov.core import vocabulary as v

MAX_EPOCH = 2**31 - 1  # the store's epoch column is a 32-bit INTEGER in MonetDB


class Rejected(Exception):
    """A span (or data point) that breaks a rule: `reason` is the short category that is counted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Rule:
    """One validation rule: a predicate over a few decoded values, and what a rejection says when it fails."""

    name: str
    reason: str  # bad_ids | bad_time | bad_attribute | ...
    holds: Callable[..., bool]
    explain: Callable[..., str]

    def check(self, *values: Any) -> None:
        """Raise `Rejected` unless the rule holds for `values`."""
        if not self.holds(*values):
            raise Rejected(self.reason, self.explain(*values))


_NO_TRACE, _NO_SPAN = bytes(16), bytes(8)


def _end(start_ns: int, end_ns: int) -> int:
    return end_ns or start_ns  # a span without an end time is an instant


TRACE_ID = Rule(
    "trace_id", "bad_ids",
    lambda trace_id: len(trace_id) == 16 and trace_id != _NO_TRACE,
    lambda trace_id: f"trace id must be 16 non-zero bytes, got {trace_id.hex() or 'none'}")
SPAN_ID = Rule(
    "span_id", "bad_ids",
    lambda span_id: len(span_id) == 8 and span_id != _NO_SPAN,
    lambda span_id: f"span id must be 8 non-zero bytes, got {span_id.hex() or 'none'}")
RUN_ID_AGREES = Rule(
    "run_id_agrees", "bad_ids",
    lambda claimed, run_id: not claimed or claimed.lower() == run_id,
    lambda claimed, run_id: f"{v.RUN_ID}={claimed!r} disagrees with trace id {run_id}")
HAS_START = Rule(
    "has_start", "bad_time",
    lambda start_ns: start_ns != 0,
    lambda start_ns: "span has no start time")
ENDS_AFTER_START = Rule(
    "ends_after_start", "bad_time",
    lambda start_ns, end_ns: _end(start_ns, end_ns) >= start_ns,
    lambda start_ns, end_ns: "span ends before it starts")
EPOCH_IN_RANGE = Rule(
    "epoch_in_range", "bad_attribute",
    lambda epoch: 0 <= epoch <= MAX_EPOCH,
    lambda epoch: f"{v.EPOCH} must be in [0, {MAX_EPOCH}], got {epoch}")
ELAPSED_VALID = Rule(
    "elapsed_valid", "bad_attribute",
    lambda elapsed: elapsed >= 0 and math.isfinite(elapsed),
    lambda elapsed: f"{v.EPOCH_ELAPSED} must be a finite number >= 0, got {elapsed!r}")

EPOCH_SPAN_RULES: tuple[Rule, ...] = (TRACE_ID, SPAN_ID, RUN_ID_AGREES, HAS_START, ENDS_AFTER_START, EPOCH_IN_RANGE,
                                      ELAPSED_VALID)
"""Every rule an epoch span must pass, in the order the general path checks them."""


def span_times(start_ns: int, end_ns: int) -> tuple[float, float]:
    """(start, end) in Unix seconds of a span that passes HAS_START and ENDS_AFTER_START; raises `Rejected`."""
    HAS_START.check(start_ns)
    ENDS_AFTER_START.check(start_ns, end_ns)
    return start_ns / 1e9, _end(start_ns, end_ns) / 1e9
