"""The ingest fast paths give exactly what the general paths give.

- translation: pinnprov/collector/translate_fast.py (epoch spans, one scan of the KeyValues) against
  `translate_traces(request, fast=False)`, on randomized OTLP requests full of valid and invalid spans
  (wrong types, duplicates, empty values, huge strings, nested values, bad ids and times, foreign spans);
- rows: `rows.epoch_values`/`epoch_extra_values` against the dict rows every SQL sink shares;
- SQLite: multi-row INSERTs on prepared tuples against one statement per row, compared table by table.
Randomized with fixed seeds, so a failure is reproducible from the seed in its test id.
"""

from __future__ import annotations

import math
import random
import sqlite3
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prov_builders import dump, request_for, sample_run

from pinnprov.collector.otlp_values import MAX_STRING_BYTES
from pinnprov.collector.translate import TranslationResult, translate_traces
from pinnprov.collector.translate_fast import epoch_record
from pinnprov.core import vocabulary as v
from pinnprov.store import rows, sqlite_writes
from pinnprov.store.records import EpochRecord
from pinnprov.store.sqlite_sink import connect_writer

RUN = bytes(range(1, 17))
RUN_HEX = RUN.hex()
KNOWN = [v.EPOCH, v.EPOCH_ELAPSED, v.LOSS_TOTAL, v.LOSS_BOUNDARY, v.LOSS_RESIDUAL, v.LOSS_DATA, v.LEARNING_RATE]
HUGE = "z" * (MAX_STRING_BYTES + 1)


def _random_value(rng: random.Random, key: str, odd: float) -> AnyValue:
    """What a trainer sends for `key`, or with probability `odd` anything OTLP allows."""
    if rng.random() >= odd:
        if key == v.RUN_ID:
            return AnyValue(string_value=rng.choice([RUN_HEX, RUN_HEX.upper(), "", "f" * 32]))
        if key == v.EPOCH:
            return AnyValue(int_value=rng.choice([0, 1, 7, 2**31 - 1, rng.randrange(10**6)]))
        if rng.random() < 0.1:
            return AnyValue(int_value=rng.choice([0, 3]))  # an int where a float belongs is fine
        return AnyValue(double_value=rng.choice([0.0, -0.0, 0.5, 1e-300, 3.25, rng.random(), 1e6, math.nan]))
    if key == v.EPOCH and rng.random() < 0.5:  # the edges of the valid range, as int and as double
        number = rng.choice([2**31, 2**31 - 1, -1, 0, 2, 2.0, 2.5, -0.0, 1e300, math.inf, math.nan])
        return AnyValue(int_value=number) if isinstance(number, int) else AnyValue(double_value=number)
    if key == v.EPOCH_ELAPSED and rng.random() < 0.5:
        return AnyValue(double_value=rng.choice([-0.0, -1e-300, 0.0, 1e308, math.inf, -math.inf, math.nan]))
    choices: list[Any] = [
        AnyValue(double_value=rng.choice([math.nan, math.inf, -math.inf, -1.0, 2.5, 2.0**31, 1e300])),
        AnyValue(int_value=rng.choice([0, -1, 5, 2**31, 2**63 - 1, -(2**63)])),
        AnyValue(bool_value=rng.random() < 0.5),
        AnyValue(string_value=rng.choice(["x", "", "1.5", RUN_HEX, "é" * 3])),
        AnyValue(bytes_value=rng.choice([b"", b"\x00\x01", b"b" * (MAX_STRING_BYTES + 1)])),
        AnyValue(),
    ]
    array = AnyValue()
    array.array_value.values.extend([AnyValue(double_value=1.0), AnyValue(string_value=rng.choice(["a", HUGE]))])
    kvlist = AnyValue()
    kvlist.kvlist_value.values.append(KeyValue(key="k", value=AnyValue(int_value=1)))
    choices += [array, kvlist]
    if rng.random() < 0.1:
        choices.append(AnyValue(string_value=HUGE))
    return rng.choice(choices)


def _random_attributes(rng: random.Random) -> list[KeyValue]:
    odd = rng.choice([0.0, 0.0, 0.0, 0.05, 0.3])  # most spans are clean, some a little or very odd
    keys = [key for key in KNOWN if rng.random() < 0.93]
    keys += [v.EPOCH_EXTRA_PREFIX + rng.choice(["data_rms_s", "a", "", "b.c"]) for _ in range(rng.choice([0, 1, 1, 2]))]
    if rng.random() < 0.3:
        keys.append(v.RUN_ID)
    if rng.random() < 0.2:
        keys.append(rng.choice(["pinn.note", "other.key", v.PREFIX]))
    if rng.random() < 0.1 and keys:
        keys.append(rng.choice(keys))  # a duplicate key: the last value wins
    rng.shuffle(keys)
    return [KeyValue(key=key, value=_random_value(rng, key, odd)) for key in keys]


def _random_span(rng: random.Random, index: int) -> Span:
    start = 1_700_000_000_000_000_000 + index * 1_000_000
    span = Span(
        trace_id=RUN if rng.random() < 0.9 else rng.choice([bytes(16), b"\x01" * 8, b"", bytes(range(2, 18))]),
        span_id=(index + 1).to_bytes(8, "big") if rng.random() < 0.93 else rng.choice([bytes(8), b"", b"\x01"]),
        name=v.EPOCH_SPAN if rng.random() < 0.85 else rng.choice([v.RUN_SPAN, v.ADAPTATION_SPAN, "http.request"]),
        start_time_unix_nano=start if rng.random() < 0.95 else 0,
        end_time_unix_nano=rng.choice([start + 500_000_000] * 8 + [0, start - 1, start]),
    )
    span.attributes.extend(_random_attributes(rng))
    return span


def _random_request(rng: random.Random, spans: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(rng.choice([1, 1, 2])):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(KeyValue(key="host.name", value=AnyValue(string_value="n1")))
        if rng.random() < 0.05:
            resource_spans.resource.attributes.append(KeyValue(key="blob", value=AnyValue(string_value=HUGE)))
        scope = resource_spans.scope_spans.add()
        scope.spans.extend(_random_span(rng, index) for index in range(spans))
    return request


def _canonical(result: TranslationResult) -> tuple:
    """Comparable form: repr keeps NaN == NaN, 0.0 != -0.0 and int != float apart."""
    return (
        [repr(record) for record in result.records],
        [(r.reason, r.span_name, r.detail) for r in result.rejected],
        result.ignored,
    )


@pytest.mark.parametrize("seed", range(12))
def test_fast_translation_equals_general_on_random_requests(seed: int) -> None:
    rng = random.Random(seed)
    request = _random_request(rng, 150)
    fast, general = translate_traces(request), translate_traces(request, fast=False)
    assert _canonical(fast) == _canonical(general)
    # Not vacuous: the fast path itself produced records, each equal to the general path's for its span.
    taken = 0
    for resource_spans in request.resource_spans:
        for span in resource_spans.scope_spans[0].spans:
            if span.name != v.EPOCH_SPAN or span.trace_id != RUN or len(span.span_id) != 8 or not any(span.span_id):
                continue  # the fast path is only asked about epoch spans with valid ids
            record = epoch_record(span, span.trace_id.hex(), span.span_id.hex())
            if record is not None:
                (expected,) = translate_traces(_single(span), fast=False).records
                assert repr(record) == repr(expected)
                taken += 1
    assert taken >= 5 and len(general.rejected) >= 5


def _single(span: Span) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    return request


def test_fast_path_takes_every_epoch_span_a_trainer_sends() -> None:
    request = request_for(sample_run(3, epochs=40), sample_run(4, epochs=3))
    assert _canonical(translate_traces(request)) == _canonical(translate_traces(request, fast=False))
    epochs = [s for rs in request.resource_spans for s in rs.scope_spans[0].spans if s.name == v.EPOCH_SPAN]
    assert len(epochs) == 43
    assert all(epoch_record(s, s.trace_id.hex(), s.span_id.hex()) is not None for s in epochs)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (v.EPOCH_EXTRA_PREFIX + "flag", AnyValue(bool_value=True)),
        (v.EPOCH_EXTRA_PREFIX + "rms", AnyValue(string_value="x")),
        (v.EPOCH_EXTRA_PREFIX, AnyValue(double_value=1.0)),
        ("pinn.note", AnyValue(string_value=HUGE)),
    ],
)
def test_bad_optional_attributes_go_to_the_general_path_which_drops_only_them(key: str, value: AnyValue) -> None:
    span = _random_span(random.Random(0), 0)
    del span.attributes[:]
    span.trace_id, span.span_id, span.name = RUN, b"\x01" * 8, v.EPOCH_SPAN
    span.end_time_unix_nano = span.start_time_unix_nano + 1
    span.attributes.extend(KeyValue(key=k, value=AnyValue(double_value=1.0)) for k in KNOWN)
    span.attributes.append(KeyValue(key=key, value=value))
    assert epoch_record(span, RUN_HEX, "01" * 8) is None
    result = translate_traces(_single(span))
    assert len(result.records) == 1 and result.rejected == [] and len(result.dropped) == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (v.LOSS_TOTAL, AnyValue(string_value="high")),
        (v.LOSS_DATA, AnyValue(bool_value=True)),
        (v.EPOCH, AnyValue(double_value=2.5)),
        (v.EPOCH, AnyValue(int_value=-1)),
        (v.EPOCH, AnyValue(int_value=2**31)),
        (v.EPOCH_ELAPSED, AnyValue(double_value=math.inf)),
        (v.RUN_ID, AnyValue(double_value=1.0)),
        (v.RUN_ID, AnyValue(bool_value=False)),
        (v.RUN_ID, AnyValue(bytes_value=RUN_HEX.encode())),
        (v.LOSS_TOTAL, AnyValue()),
        (v.EPOCH_ELAPSED, AnyValue(double_value=-0.1)),
        (v.RUN_ID, AnyValue(string_value="0" * 31 + "9")),
    ],
)
def test_fast_path_leaves_invalid_spans_to_the_general_path(key: str, value: AnyValue) -> None:
    span = _random_span(random.Random(0), 0)
    del span.attributes[:]
    span.trace_id, span.span_id, span.name = RUN, b"\x01" * 8, v.EPOCH_SPAN
    span.end_time_unix_nano = span.start_time_unix_nano + 1
    span.attributes.extend(KeyValue(key=k, value=AnyValue(double_value=1.0)) for k in KNOWN)
    assert epoch_record(span, RUN_HEX, "01" * 8) is not None
    span.attributes.append(KeyValue(key=key, value=value))
    assert epoch_record(span, RUN_HEX, "01" * 8) is None
    result = translate_traces(_single(span))
    assert result.records == [] and len(result.rejected) == 1


def test_too_many_attributes_are_left_to_the_general_path() -> None:
    span = Span(trace_id=RUN, span_id=b"\x01" * 8, name=v.EPOCH_SPAN, start_time_unix_nano=1, end_time_unix_nano=2)
    span.attributes.extend(KeyValue(key=k, value=AnyValue(double_value=1.0)) for k in KNOWN)
    span.attributes.extend(KeyValue(key=f"other.{n}", value=AnyValue(int_value=n)) for n in range(4096 - len(KNOWN)))
    assert epoch_record(span, RUN_HEX, "01" * 8) is not None  # exactly the limit: fine
    span.attributes.append(KeyValue(key="one.more", value=AnyValue(int_value=1)))
    assert epoch_record(span, RUN_HEX, "01" * 8) is None
    (rejection,) = translate_traces(_single(span)).rejected
    assert rejection.reason == "bad_attribute" and "more than 4096 attributes" in rejection.detail


def _random_record(rng: random.Random, run: int, epoch: int) -> EpochRecord:
    def number() -> Any:
        return rng.choice([rng.random(), 1.5, 0.0, -0.0, math.nan, math.inf, -math.inf, 3, True, 1e-310])

    extra = {rng.choice(["b", "a", "c", "rms"]): number() for _ in range(rng.choice([0, 1, 3]))}
    return EpochRecord(f"{run:032x}", f"{epoch + 1:016x}", epoch, 1.7e9 + epoch, 1.7e9 + epoch + 0.5,
                       *(number() if rng.random() < 0.3 else rng.random() for _ in range(6)), extra=extra)


@pytest.mark.parametrize("seed", range(4))
def test_epoch_values_equal_the_dict_rows(seed: int) -> None:
    rng = random.Random(seed)
    for index in range(300):
        record = _random_record(rng, 1, index)
        row = rows.epoch_row(record)
        assert repr(rows.epoch_values(record)) == repr(tuple(row[c] for c in rows.EPOCH_VALUE_COLUMNS))
        expected = [(r["run_id"], r["epoch"], r["name"], r["value"]) for r in rows.epoch_extra_rows(record)]
        assert repr(rows.epoch_extra_values(record)) == repr(expected)
    assert tuple(sqlite_writes.EPOCH_COLUMNS) == rows.EPOCH_VALUE_COLUMNS


def _write(path: Any, batches: list[list[EpochRecord]]) -> None:
    conn = connect_writer(path, busy_timeout_s=5)
    try:
        for batch in batches:
            conn.execute("BEGIN IMMEDIATE")
            sqlite_writes.write_records(conn, batch)
            conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.parametrize("seed", range(3))
def test_multi_row_writes_equal_row_by_row_writes(tmp_path, monkeypatch, seed: int) -> None:
    rng = random.Random(seed)
    batches = []
    for size in (700, 37, 1, 300):  # exercises statements of 256, 32, 4 and 1 rows
        records = [_random_record(rng, rng.randrange(1, 6), rng.randrange(0, 400)) for _ in range(size)]
        batches.append(records)  # random (run, epoch) pairs: duplicates inside one statement keep the first
    _write(tmp_path / "fast.db", batches)
    monkeypatch.setattr(sqlite_writes, "_FAST_ROWS", False)
    monkeypatch.setattr(sqlite_writes, "_CHUNKS", (1,))
    _write(tmp_path / "general.db", batches)
    fast, general = dump(tmp_path / "fast.db"), dump(tmp_path / "general.db")
    assert len(fast["epoch_metric"]) > 500 and len(fast["epoch_extra"]) > 300
    assert fast == general


def test_multi_row_insert_respects_a_low_variable_limit(tmp_path) -> None:
    records = [_random_record(random.Random(1), 1, epoch) for epoch in range(300)]
    conn = connect_writer(tmp_path / "limited.db", busy_timeout_s=5)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # like an old SQLite build (999 or less)
    try:
        conn.execute("BEGIN IMMEDIATE")
        sqlite_writes.write_records(conn, records)
        conn.execute("COMMIT")
        assert conn.execute("SELECT COUNT(*) FROM epoch_metric").fetchone() == (300,)
    finally:
        conn.close()
