"""Every layer agrees with the one schema of fields (pinnprov/core/fields.py), and the ingest fast paths are on.

A disagreement fails here with the layer's name: the config keys, the vocabulary, the DDL, the row builders, the
index templates, the typed records and events. The translation and row fast paths must stay in use for ordinary
epoch spans made by the real OpenTelemetry SDK through the real observer (their silent fallback is a slowdown
nobody would notice otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import typing

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pinnprov.capture.observer import ProvenanceObserver
from pinnprov.collector import translate_fast
from pinnprov.core import fields, vocabulary
from pinnprov.core.es_indices import index_templates, index_templates_dir
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.observer import DatasetIdentity, EpochEnded, RunEnded, RunStarted
from pinnprov.store import rows, sqlite_writes
from pinnprov.store.records import EpochRecord
from pinnprov.store.schema import TABLES_BY_NAME


def test_names_are_unique_and_under_their_prefixes() -> None:
    names = [hp.name for hp in fields.HYPERPARAMETERS]
    assert len(names) == len(set(names))
    assert all(hp.attribute.startswith(vocabulary.HYPERPARAMETER_PREFIX) for hp in fields.HYPERPARAMETERS)
    columns = [hp.column for hp in fields.PROMOTED_HYPERPARAMETERS]
    assert len(columns) == len(set(columns))
    attributes = [field.attribute for field in fields.EPOCH_FIELDS]
    assert len(attributes) == len(set(attributes)) and all(a.startswith(vocabulary.PREFIX) for a in attributes)
    assert fields.EPOCH_FIELDS[0].name == "epoch" and fields.EPOCH_FIELDS[0].required


def test_train_config_records_exactly_the_schema_hyperparameters() -> None:
    config_fields = {field.name for field in dataclasses.fields(TrainConfig)}
    keys = {hp.key for hp in fields.HYPERPARAMETERS}
    unknown = keys - config_fields - {name for name in dir(TrainConfig) if isinstance(getattr(TrainConfig, name),
                                                                                       property)}
    assert unknown == set(), f"schema hyperparameters TrainConfig does not have: {unknown}"
    unlisted = config_fields - keys - set(fields.NOT_RECORDED) - {"velocity_activation"}
    assert unlisted == set(), f"TrainConfig fields neither in the schema nor in NOT_RECORDED: {unlisted}"
    recorded = TrainConfig().hyperparameters()
    assert list(recorded) == [hp.name for hp in fields.HYPERPARAMETERS]
    python_type = {"str": str, "int": int, "float": float, "bool": bool}
    for hp in fields.HYPERPARAMETERS:
        assert type(recorded[hp.name]) is python_type[hp.kind], hp.name


def test_vocabulary_constants_are_the_schema_attributes() -> None:
    hp_attributes = {hp.attribute for hp in fields.HYPERPARAMETERS}
    epoch_attributes = {field.attribute for field in fields.EPOCH_FIELDS}
    for name in dir(vocabulary):
        value = getattr(vocabulary, name)
        if name.startswith("HP_"):
            assert value in hp_attributes, name
    epoch_constants = ("EPOCH", "EPOCH_ELAPSED", "LOSS_TOTAL", "LOSS_BOUNDARY", "LOSS_RESIDUAL", "LOSS_DATA",
                       "LEARNING_RATE")
    for name in epoch_constants:
        assert getattr(vocabulary, name) in epoch_attributes, name


def test_ddl_columns_follow_the_schema() -> None:
    run = TABLES_BY_NAME["run"]
    for hp in fields.PROMOTED_HYPERPARAMETERS:
        assert run.column(hp.column).type == fields.SQL_TYPES[hp.kind], hp.column
    epoch = [column.name for column in TABLES_BY_NAME["epoch_metric"].columns]
    measured = [field.name for field in fields.MEASURED_EPOCH_FIELDS]
    assert epoch == ["run_id", "epoch", "span_id", "started_at", "ended_at", *measured, "nonfinite"]
    assert all(TABLES_BY_NAME["epoch_metric"].column(name).type == "double" for name in measured)


def test_row_builders_follow_the_schema_and_keep_their_fast_path() -> None:
    assert list(rows.EPOCH_VALUE_COLUMNS) == [c.name for c in TABLES_BY_NAME["epoch_metric"].columns]
    assert sqlite_writes._FAST_ROWS, "the SQLite writer fell back to dict rows: its columns left the schema's order"
    assert set(rows._HP_COLUMNS) == {hp.column for hp in fields.PROMOTED_HYPERPARAMETERS}


def test_typed_records_and_events_carry_every_epoch_field() -> None:
    record_fields = [field.name for field in dataclasses.fields(EpochRecord)]
    assert all(field.name in record_fields for field in fields.EPOCH_FIELDS)
    assert translate_fast.can_skip_init() and translate_fast._SKIP_INIT
    hints = typing.get_type_hints(EpochRecord)
    for field in fields.MEASURED_EPOCH_FIELDS:
        assert hints[field.name] is float, field.name
    event_fields = {field.name for field in dataclasses.fields(EpochEnded)}
    assert {field.event for field in fields.EPOCH_FIELDS} <= event_fields


def test_index_templates_map_every_schema_field_with_its_type() -> None:
    templates = index_templates()
    runs = templates["runs"]["template"]["mappings"]["properties"]
    for hp in fields.HYPERPARAMETERS:
        if hp.es_field:
            assert runs.get(hp.es_field) == {"type": fields.ES_TYPES[hp.kind]}, hp.es_field
    epochs = templates["epochs"]["template"]["mappings"]["properties"]
    for field in fields.EPOCH_FIELDS:
        assert epochs.get(field.name) == {"type": fields.ES_TYPES[field.kind]}, field.name
    # The files hold only what the schema does not define: a second definition could disagree with it.
    for kind in ("runs", "epochs"):
        raw = json.loads((index_templates_dir() / f"{kind}.json").read_text(encoding="utf-8"))
        defined = set(raw["template"]["mappings"]["properties"])
        schema = ({field.name for field in fields.EPOCH_FIELDS} if kind == "epochs"
                  else {hp.es_field for hp in fields.HYPERPARAMETERS if hp.es_field})
        assert defined & schema == set(), f"{kind}.json repeats schema fields: {defined & schema}"


def test_ordinary_epoch_spans_from_the_real_sdk_take_the_fast_path() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = ProvenanceObserver(provider, flush_promptly=False)
    run_id = "ab" * 16
    observer.on_run_start(RunStarted(run_id, "fast", "default", 1.0e9, TrainConfig().hyperparameters(),
                                     DatasetIdentity("benchmark", "0" * 64, 100)))
    for epoch in range(20):
        extra = {"data_rms_s": 1e-5} if epoch % 2 else {}
        observer.on_epoch_end(EpochEnded(epoch, 1.0e9 + epoch, 1.0e9 + epoch + 0.01, 0.01, 1.0 / (epoch + 1),
                                         0.1, 0.2, 0.3, 1e-3, extra))
    observer.on_run_end(RunEnded("completed", 1.0e9 + 30, 20))
    request = encode_spans(exporter.get_finished_spans())
    epoch_spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
                   if span.name == vocabulary.EPOCH_SPAN]
    assert len(epoch_spans) == 20
    fast = translate_fast.EpochFastPath()
    records = [fast.record(span) for span in epoch_spans]
    assert all(record is not None for record in records), "an ordinary epoch span left the fast path"
    assert [record.epoch for record in records if record is not None] == list(range(20))
