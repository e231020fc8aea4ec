"""The fast path for epoch spans: one scan of the KeyValue list, no intermediate dict, no typed getters.

Why: epoch spans are nearly all of the traffic (a trainer sends one per epoch, the other span kinds once per
run), and the general path in pinnprov/collector/translate.py converts *every* attribute to a Python value in a dict
and then reads it back with typed getters: about 25-30 us per span, the collector's largest cost.

Contract: `epoch_record(span, run_id, span_id)` returns exactly the `EpochRecord` the general path would
return, or None. None means "not the ordinary valid shape": a missing or wrongly typed attribute, an
oversized or nested value, a span that breaks a rule of pinnprov/collector/epoch_rules.py (ids, times, the run
id, the epoch range, the elapsed time)... The caller then runs the general path, which decides and explains (the
same rejection, counted and logged as before). So the fast path never rejects anything itself, and it checks
every rule through the same `Rule.holds` the general path raises from: it skips decoding work, never a rule;
tests/collector/test_translate_fast_path.py checks the equivalence on randomized spans,
tests/collector/test_epoch_rules.py each rule in turn.
"""

from __future__ import annotations

import dataclasses

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pinnprov.collector.epoch_rules import (
    ELAPSED_VALID,
    ENDS_AFTER_START,
    EPOCH_IN_RANGE,
    HAS_START,
    RUN_ID_AGREES,
    SPAN_ID,
    TRACE_ID,
)
from pinnprov.collector.otlp_values import MAX_ATTRIBUTES, AttributeProblem, plain
from pinnprov.core import vocabulary as v
from pinnprov.core.fields import EPOCH_FIELDS
from pinnprov.store.records import EpochRecord

# Slots of the numeric epoch attributes, in the order of the one schema of fields (pinnprov/core/fields.py); the run id
# is read apart. Slot 0 is the epoch number (the key), the others are the measured fields.
_SLOTS: dict[str, int] = {field.attribute: slot for slot, field in enumerate(EPOCH_FIELDS)}
_FIELD_NAMES = tuple(field.name for field in EPOCH_FIELDS)
_WIDTH = len(EPOCH_FIELDS)
_ELAPSED = _SLOTS[v.EPOCH_ELAPSED]  # defaults to the span's duration
_REQUIRED = tuple(slot for slot, field in enumerate(EPOCH_FIELDS) if field.required)
assert _SLOTS[v.EPOCH] == 0 and EPOCH_FIELDS[0].kind == "int"
_RUN_ID = v.RUN_ID
_EXTRA = v.EPOCH_EXTRA_PREFIX
_EXTRA_LEN = len(_EXTRA)
_NAN = float("nan")
_NEW = object.__new__
# The rules' predicates, bound once (a span passes each of them on the hot path).
_has_start, _ends_after_start, _run_id_agrees = HAS_START.holds, ENDS_AFTER_START.holds, RUN_ID_AGREES.holds
_epoch_in_range, _elapsed_valid, _span_id_ok, _trace_id_ok = (EPOCH_IN_RANGE.holds, ELAPSED_VALID.holds,
                                                              SPAN_ID.holds, TRACE_ID.holds)
_RECORD_FIELDS = ("run_id", "record_id", "epoch", "started_at", "ended_at", *_FIELD_NAMES[1:], "extra")


def can_skip_init() -> bool:
    """Whether an EpochRecord may be built without its frozen-dataclass __init__ (one object.__setattr__ per field,
    about 2 us a record): only while it is a plain frozen dataclass with exactly the schema's fields, no
    __post_init__ and no __slots__. Otherwise the constructor is used; the record is identical either way
    (tests/core/test_fields.py asserts that the shortcut is on)."""
    fields = tuple(f.name for f in dataclasses.fields(EpochRecord))
    return (fields == _RECORD_FIELDS and not hasattr(EpochRecord, "__post_init__")
            and not hasattr(EpochRecord, "__slots__"))


_SKIP_INIT = can_skip_init()


def epoch_record(span: Span, run_id: str, span_id: str) -> EpochRecord | None:
    """The record of a valid, ordinary epoch span; None when the general path must decide (see module doc)."""
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    if not (_has_start(start) and _ends_after_start(start, end)):
        return None
    end = end or start
    pairs = span.attributes
    if len(pairs) > MAX_ATTRIBUTES:
        return None
    values: list[float | None] = [None] * _WIDTH  # int or float as sent; None while absent
    extra: dict[str, float] = {}
    claimed = ""
    slots = _SLOTS
    for pair in pairs:
        key = pair.key
        value = pair.value
        # A non-zero double_value proves the oneof holds a double (an unset member reads as 0.0; NaN is
        # truthy), so the common case needs no WhichOneof call.
        number: float | int = value.double_value
        slot = slots.get(key)
        if not number:
            kind = value.WhichOneof("value")
            if kind == "int_value":
                number = value.int_value
            elif kind != "double_value":
                if slot is not None:
                    return None  # a string, bool, array... or nothing where a number belongs
                if key == _RUN_ID:
                    if kind != "string_value":
                        return None
                    claimed = value.string_value
                elif key.startswith(_EXTRA):
                    return None
                elif kind != "bool_value":
                    try:  # an attribute we do not read: still refuse oversized strings, as the general path does
                        plain(value, key)
                    except AttributeProblem:
                        return None
                continue
        if slot is not None:
            values[slot] = number
        elif key.startswith(_EXTRA):
            if len(key) == _EXTRA_LEN:
                return None  # an extra without a name: the general path drops it and says so
            extra[key[_EXTRA_LEN:]] = float(number)
        elif key == _RUN_ID:
            return None  # a number where the run id belongs
    if claimed and not _run_id_agrees(claimed, run_id):
        return None
    for slot in _REQUIRED:
        if values[slot] is None:
            return None
    raw_epoch = values[0]
    if isinstance(raw_epoch, int):
        epoch = raw_epoch
    elif raw_epoch is not None and raw_epoch.is_integer():
        epoch = int(raw_epoch)
    else:
        return None
    if not _epoch_in_range(epoch):
        return None
    started = start / 1e9
    ended = end / 1e9
    elapsed = values[_ELAPSED]
    elapsed = ended - started if elapsed is None else float(elapsed)
    if not _elapsed_valid(elapsed):
        return None
    values[_ELAPSED] = elapsed
    measured = [_NAN if value is None else float(value) for value in values[1:]]
    if not _SKIP_INIT:
        measured_fields = dict(zip(_FIELD_NAMES[1:], measured, strict=True))
        return EpochRecord(run_id, span_id, epoch, started, ended, **measured_fields, extra=extra)
    record = _NEW(EpochRecord)
    fields = record.__dict__
    fields.update(zip(_FIELD_NAMES[1:], measured, strict=True))
    fields.update(run_id=run_id, record_id=span_id, epoch=epoch, started_at=started, ended_at=ended, extra=extra)
    return record


class EpochFastPath:
    """The fast path over one request: checks ids by the general path's rules and hexes a trace id once, since
    the spans of a request nearly always share it (one run per trainer)."""

    __slots__ = ("_trace_id", "_run_id")

    def __init__(self) -> None:
        self._trace_id: bytes | None = None
        self._run_id = ""

    def record(self, span: Span) -> EpochRecord | None:
        """`epoch_record` for an epoch span with valid ids; None leaves the span to the general path."""
        trace_id, span_id = span.trace_id, span.span_id
        if trace_id != self._trace_id:
            if not _trace_id_ok(trace_id):
                return None
            self._trace_id, self._run_id = trace_id, trace_id.hex()
        if not _span_id_ok(span_id):
            return None
        return epoch_record(span, self._run_id, span_id.hex())
