"""Every layer agrees with the one schema of fields (pinnprov/core/fields.py), and the ingest fast paths are on.

A disagreement fails here with the layer's name: the config keys, the vocabulary, the DDL, the row builders, the
index templates, the typed records and events. The translation and row fast paths must stay in use for ordinary
epoch spans made by the real OpenTelemetry SDK through the real observer (their silent fallback is a slowdown
nobody would notice otherwise).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pinnprov
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
    assert {field.name for field in fields.EPOCH_FIELDS} <= event_fields, "the producer's event uses the schema names"


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


# --- the places that derive their lists from the schema ---------------------------------------------------------
# Each derives from pinnprov/core/fields.py; these tests fail when one spells the fields by hand again (a new field
# would silently miss it) or when a user-visible name (alert `metric:` names, CLI columns, JSON keys) changes.

SRC = Path(pinnprov.__file__).parent


def test_rule_metrics_export_attributes_and_query_columns_are_the_measured_fields() -> None:
    from pinnprov.collector.alerts import rules
    from pinnprov.store import prov_export, queries

    measured = [field.name for field in fields.MEASURED_EPOCH_FIELDS]
    assert sorted(rules.METRICS) == sorted(measured), "alert rules must be able to watch every measured field"
    assert list(prov_export._EPOCH_ATTRIBUTES) == measured, "the PROV export must carry every measured field"
    assert list(queries.SERIES_COLUMNS) == measured, "charts draw every measured field"
    assert list(queries.LATEST_COLUMNS) == [field.name for field in fields.LATEST_EPOCH_FIELDS]
    epochs_sql, _ = queries.QUERIES.get("epochs").build(queries.QueryOptions(run_id="r"))
    assert epochs_sql.startswith(f'SELECT "epoch", {", ".join(measured)}, ended_at FROM epoch_metric')
    for field in fields.LOSS_FIELDS:
        assert rules.ALIASES[field.component] == field.name
    for field in fields.MEASURED_EPOCH_FIELDS:
        assert all(rules.ALIASES[alias] == field.name for alias in field.aliases)
    assert set(rules.ALIASES.values()) <= set(rules.METRICS)


def test_user_visible_names_stay_as_they_were() -> None:
    """Deriving must not rename anything users write or read: rule files, CLI columns, metric series."""
    from pinnprov.collector.alerts import rules
    from pinnprov.store import queries

    assert rules.METRICS == ("loss", "loss_bc", "loss_residual", "loss_data", "elapsed_s", "learning_rate")
    assert rules.ALIASES == {"total": "loss", "boundary": "loss_bc", "residual": "loss_residual", "data": "loss_data",
                             "epoch_time": "elapsed_s"}
    assert queries.LATEST_COLUMNS == ("elapsed_s", "loss", "loss_bc", "loss_residual", "loss_data")
    assert fields.LOSS_COMPONENTS == ("total", "boundary", "residual", "data")
    assert (vocabulary.METRIC_LOSS, vocabulary.METRIC_LEARNING_RATE, vocabulary.METRIC_EPOCH_DURATION) == (
        "pinn.loss", "pinn.learning_rate", "pinn.epoch.duration")


def test_observer_reports_every_metric_field_as_its_instrument() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    observer = ProvenanceObserver(TracerProvider(), meters, flush_promptly=False)
    run_id = "cd" * 16
    observer.on_run_start(RunStarted(run_id, "gauges", "default", 1.0e9, {}, DatasetIdentity("b", "0" * 64, 1)))
    values = {field.name: 0.125 * (k + 1) for k, field in enumerate(fields.MEASURED_EPOCH_FIELDS)}
    observer.on_epoch_end(EpochEnded(epoch=3, started_at=1.0e9, ended_at=1.0e9 + 1, **values))
    points = {(metric.name, point.attributes.get(vocabulary.LOSS_COMPONENT)): point
              for resource in reader.get_metrics_data().resource_metrics for scope in resource.scope_metrics
              for metric in scope.metrics for point in metric.data.data_points}
    for field in fields.METRIC_EPOCH_FIELDS:
        point = points.pop((field.metric, field.component or None))
        value = point.sum if field.metric == vocabulary.METRIC_EPOCH_DURATION else point.value
        assert value == values[field.name], field.name
        assert point.attributes[vocabulary.RUN_ID] == run_id
    assert set(points) == {(vocabulary.METRIC_EPOCHS, None)}, "an instrument no schema field declares"
    assert observer.errors == 0


def test_keras_component_map_is_the_loss_fields() -> None:
    keras_callback = pytest.importorskip("pinnprov.integrations.keras")
    assert tuple(field.component for field in fields.LOSS_FIELDS) == keras_callback.COMPONENTS


def test_weights_and_loss_components_share_their_names() -> None:
    """A steering `set_weight` names the loss term it weighs: w_BC is `boundary`, the hyperparameter loss.weight.*."""
    from pinnprov.core.steering import WEIGHT_PARAMETERS

    terms = {field.component for field in fields.LOSS_FIELDS if field.name != "loss"}
    assert set(WEIGHT_PARAMETERS) <= terms
    assert {f"loss.weight.{term}" for term in terms} <= set(fields.HYPERPARAMETERS_BY_NAME)


def test_epoch_fields_have_one_name_and_declared_labels() -> None:
    names = [field.name for field in fields.EPOCH_FIELDS]
    labels = [field.label for field in fields.EPOCH_FIELDS]
    assert all(labels) and len(set(labels)) == len(labels)
    components = [field.component for field in fields.LOSS_FIELDS]
    aliases = [alias for field in fields.EPOCH_FIELDS for alias in field.aliases]
    every = names + components + aliases
    assert len(every) == len(set(every)), "a name that means two fields"
    assert fields.LOSS_FIELDS[0].name == "loss", "the total loss comes first: the component map's default"
    assert all(field.metric for field in fields.LOSS_FIELDS), "every loss term is a series of the loss gauge"


def test_the_ui_labels_and_series_are_the_schema_labels_and_fields() -> None:
    from pinnprov.ui import reads

    for script in sorted((SRC / "ui" / "static").glob("*.js")):
        text = script.read_text(encoding="utf-8")
        for key, label in re.findall(r"\b(\w+): \"([^\"]+)\"", text):
            field = fields.EPOCH_FIELDS_BY_NAME.get(key)
            if field is not None and key != "epoch":
                assert label == field.label, f"{script.name}: {key} is {label!r}, the schema's label {field.label!r}"
    series = re.search(r"const SERIES = \[([^\]]*)\]", (SRC / "ui" / "static" / "run.js").read_text(encoding="utf-8"))
    assert series is not None
    assert set(re.findall(r'"(\w+)"', series.group(1))) == {field.name for field in fields.MEASURED_EPOCH_FIELDS}
    assert reads.R2_SUMMARY in {field.name for field in fields.SUMMARY_FIELDS}


def test_the_experiment_drivers_read_table2_columns() -> None:
    from pinnprov.experiments.storeview import Progress

    measured = {field.name for field in dataclasses.fields(Progress)} - {"epoch", "status"}
    assert measured <= {field.name for field in fields.LATEST_EPOCH_FIELDS}


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


# Hand-spelled lists of epoch fields that are not derived, and why they may stay.
_FIELD_LISTS_ALLOWED = {
    "pinn/losses.py": "RECORD_FIELDS is the compiled loop's record layout (the producer), extras included",
}


def test_no_second_name_and_no_hand_spelled_field_list_in_the_code() -> None:
    """The wire keys live in fields.py (and vocabulary.py takes them from there); no list of epoch fields is re-spelled.

    A literal tuple/list/set naming three or more measured fields is a list that a new field would miss.
    """
    attributes = {field.attribute for field in fields.MEASURED_EPOCH_FIELDS}  # pinn.epoch is also the span's name
    retired = {"loss_boundary"}  # the producer's former name of loss_bc
    measured = {field.name for field in fields.MEASURED_EPOCH_FIELDS}
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "core/fields.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _string_constants(tree):
            if node.value in attributes or node.value in retired:
                problems.append(f"{relative}:{node.lineno}: {node.value!r}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                named = {item.value for item in node.elts if isinstance(item, ast.Constant)} & measured
                if len(named) >= 3 and relative not in _FIELD_LISTS_ALLOWED:
                    problems.append(f"{relative}:{node.lineno}: a hand-spelled list of epoch fields {sorted(named)}")
        for name in retired:
            if re.search(rf"\b{name}\b", path.read_text(encoding="utf-8")):
                problems.append(f"{relative}: the retired name {name}")
    assert problems == [], "\n".join(problems)


_NEW_FIELD = """
import dataclasses
from pinnprov.core import fields

new = fields.EpochField("grad_norm", "float", "1", "pinn.grad_norm", "norm of the gradient", label="|g|",
                        component="gradient", metric="pinn.grad_norm", aliases=("gradient_norm",))
fields.EPOCH_FIELDS = (*fields.EPOCH_FIELDS, new)
fields.MEASURED_EPOCH_FIELDS = fields.EPOCH_FIELDS[1:]
fields.LOSS_FIELDS = (*fields.LOSS_FIELDS, new)
fields.LOSS_COMPONENTS = (*fields.LOSS_COMPONENTS, new.component)
fields.LATEST_EPOCH_FIELDS = (*fields.LATEST_EPOCH_FIELDS, new)
fields.METRIC_EPOCH_FIELDS = (*fields.METRIC_EPOCH_FIELDS, new)
fields.EPOCH_FIELDS_BY_NAME = {field.name: field for field in fields.EPOCH_FIELDS}

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pinnprov.capture.observer import ProvenanceObserver
from pinnprov.collector.alerts import config, rules
from pinnprov.pinn.observer import DatasetIdentity, EpochEnded, RunStarted
from pinnprov.store import prov_export, queries

assert "grad_norm" in rules.METRICS, "alert metrics"
assert rules.ALIASES["gradient"] == rules.ALIASES["gradient_norm"] == "grad_norm", "alert aliases"
assert config.parse_rule({"name": "g", "kind": "threshold", "metric": "gradient_norm", "threshold": 1}, 0).metric \\
    == "grad_norm"
assert "grad_norm" in prov_export._EPOCH_ATTRIBUTES, "PROV export attributes"
assert "grad_norm" in queries.SERIES_COLUMNS and "grad_norm" in queries.LATEST_COLUMNS, "series and Table 2 columns"
for name in ("epochs", "latest", "epoch_buckets"):
    sql, _ = queries.QUERIES.get(name).build(queries.QueryOptions(run_id="r"))
    assert "grad_norm" in sql, name

Event = dataclasses.make_dataclass("Event", [("grad_norm", float, 0.5)], bases=(EpochEnded,), frozen=True)
spans = InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(spans))
reader = InMemoryMetricReader()
observer = ProvenanceObserver(tracing, MeterProvider(metric_readers=[reader]), flush_promptly=False)
observer.on_run_start(RunStarted("ab" * 16, "n", "e", 1.0e9, {}, DatasetIdentity("b", "0" * 64, 1)))
observer.on_epoch_end(Event(0, 1.0e9, 1.0e9 + 1, 1.0, 0.4, 0.1, 0.2, 0.1, 1e-3))
assert observer.errors == 0
(span,) = [span for span in spans.get_finished_spans() if span.name == "pinn.epoch"]
assert span.attributes["pinn.grad_norm"] == 0.5, "epoch span attribute"
gauges = {(m.name, dict(p.attributes).get("pinn.loss.component")): p.value
          for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics for m in s.metrics
          for p in m.data.data_points if m.name != "pinn.epoch.duration"}
assert gauges[("pinn.grad_norm", "gradient")] == 0.5, "gauge"
print("ok")
"""


def test_a_new_epoch_field_reaches_every_derived_place() -> None:
    """Adds a field to the schema (in a fresh interpreter, before anything derives from it) and looks for it."""
    done = subprocess.run([sys.executable, "-c", _NEW_FIELD], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
