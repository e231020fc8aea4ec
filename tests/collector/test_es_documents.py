"""PROV records -> Elasticsearch documents: ids, fields, non-finite values, and agreement with the mappings."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from pinnprov.collector.es_documents import (
    RunInfo,
    document_fields,
    encode_bulk,
    indexed_documents,
    iso,
    run_info_from_start,
    to_action,
)
from pinnprov.core.es_indices import index_templates
from pinnprov.store.records import AdaptationRecord, AlertRecord, EpochRecord, RunEndRecord, RunStartRecord

RUN = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_700_000_000.25


def start_record(run_id: str = RUN, name: str = "adam-tanh", optimizer: str = "adam") -> RunStartRecord:
    return RunStartRecord(
        run_id=run_id,
        record_id="b7ad6b7169203331",
        run_name=name,
        experiment="sweep-1",
        started_at=T0,
        hyperparameters={
            "optimizer": optimizer,
            "activation": "tanh",
            "lr.schedule": "exponential_decay",
            "lr.initial": 1e-3,
            "lr.decay_rate": 0.99,
            "lr.decay_steps": 1000,
            "epochs": 30000,
            "network.tau.layers": 8,
        },
        dataset_name="benchmark",
        dataset_sha256="ab" * 32,
        dataset_picks=100,
        dataset_source="benchmark",
        host="gpu-1",
        service="pinnprov",
        resource={"pinn.tensorflow.version": "2.21.0"},
    )


def epoch_record(epoch: int, loss: float = 0.5, run_id: str = RUN, **extra: float) -> EpochRecord:
    return EpochRecord(
        run_id=run_id,
        record_id=f"{epoch + 1:016x}",
        epoch=epoch,
        started_at=T0 + epoch,
        ended_at=T0 + epoch + 0.9,
        elapsed_s=0.9,
        loss=loss,
        loss_bc=1e-6,
        loss_residual=1e-3,
        loss_data=5e-4,
        learning_rate=1e-3,
        extra=extra,
    )


def end_record(run_id: str = RUN) -> RunEndRecord:
    return RunEndRecord(run_id=run_id, record_id="c" * 16, ended_at=T0 + 100, status="completed", epochs=100,
                        summary={"r2": 0.52, "data.rms_s": 1.4e-5, "bad": math.nan}, run_name="adam-tanh")


def adaptation_record() -> AdaptationRecord:
    return AdaptationRecord(run_id=RUN, record_id="d" * 16, epoch=10, at=T0 + 10, parameter="learning_rate",
                            old_value="0.001", new_value="0.0005", agent="rule:slow", reason="plateau")


def alert_record() -> AlertRecord:
    return AlertRecord(alert_id="a" * 32, rule="loss-high", run_id=RUN, epoch=12, at=T0 + 12, metric="loss",
                       value=0.5, threshold=0.01, message="loss 0.5 > 0.01", actions="log,webhook")


def all_records() -> list[Any]:
    return [start_record(), epoch_record(0, **{"data.rms_s": 2e-5}), adaptation_record(), alert_record(),
            end_record()]


def _mapped_paths(mappings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    paths: dict[str, str] = {}
    for name, spec in mappings.get("properties", {}).items():
        kind = spec.get("type", "object")
        paths[f"{prefix}{name}"] = kind
        if "properties" in spec:
            paths.update(_mapped_paths(spec, f"{prefix}{name}."))
    return paths


def test_epoch_document_has_span_derived_id_and_denormalised_run_fields() -> None:
    info = run_info_from_start(start_record())
    action = to_action(epoch_record(7), "pinnprov", info)
    assert (action.op, action.index, action.doc_id) == ("index", "pinnprov-epochs", f"{RUN}-0000000000000008")
    doc = action.body
    assert doc["run_name"] == "adam-tanh" and doc["optimizer"] == "adam" and doc["activation"] == "tanh"
    assert doc["experiment"] == "sweep-1"
    assert doc["epoch"] == 7 and doc["loss"] == 0.5 and doc["loss_residual"] == 1e-3
    assert doc["@timestamp"] == iso(T0 + 7.9) == doc["ended_at"]
    assert doc["@timestamp"].endswith("Z") and doc["started_at"] == "2023-11-14T22:13:27.250Z"


def test_non_finite_losses_are_left_out_and_named() -> None:
    action = to_action(epoch_record(3, loss=math.nan, rms=math.inf, ok=1.0), "pinnprov", RunInfo())
    doc = action.body
    assert "loss" not in doc
    assert doc["non_finite"] == ["loss", "extra.rms"]
    assert doc["extra"] == {"ok": 1.0}
    body = encode_bulk([action])  # allow_nan=False: would raise if a NaN slipped through
    assert b"NaN" not in body and b"Infinity" not in body


def test_extra_keys_with_dots_do_not_become_object_paths() -> None:
    doc = to_action(epoch_record(0, **{"data.rms_s": 2e-5}), "pinnprov", RunInfo()).body
    assert doc["extra"] == {"data_rms_s": 2e-5}


def test_run_start_is_an_upsert_that_only_sets_running_on_creation() -> None:
    action = to_action(start_record(), "pinnprov", RunInfo())
    assert (action.op, action.index, action.doc_id) == ("update", "pinnprov-runs", RUN)
    assert "status" not in action.body["doc"]  # a late start must not reopen a finished run
    assert action.body["upsert"]["status"] == "running"
    doc = action.body["doc"]
    assert doc["optimizer"] == "adam" and doc["lr_initial"] == 1e-3 and doc["lr_decay_steps"] == 1000
    assert doc["hyperparameters"]["network.tau.layers"] == 8
    meta, _ = action.lines()
    assert meta == {"update": {"_index": "pinnprov-runs", "_id": RUN, "retry_on_conflict": 3}}


def test_run_end_merges_status_and_drops_non_finite_summary() -> None:
    action = to_action(end_record(), "pinnprov", RunInfo())
    assert action.body["doc_as_upsert"] is True
    doc = action.body["doc"]
    assert doc["status"] == "completed" and doc["epochs"] == 100 and doc["run_name"] == "adam-tanh"
    assert doc["summary"] == {"r2": 0.52, "data_rms_s": 1.4e-5}


def test_alert_and_adaptation_documents() -> None:
    info = RunInfo(run_name="adam-tanh", experiment="sweep-1")
    alert = to_action(alert_record(), "pp", info)
    assert (alert.index, alert.doc_id) == ("pp-alerts", "a" * 32)
    assert alert.body["actions"] == ["log", "webhook"] and alert.body["run_name"] == "adam-tanh"
    adaptation = to_action(adaptation_record(), "pp", info)
    assert (adaptation.index, adaptation.doc_id) == ("pp-adaptations", f"{RUN}-{'d' * 16}")
    assert "command_id" not in adaptation.body  # empty strings are left out, not indexed as ""


def test_bulk_body_is_exact_ndjson() -> None:
    action = to_action(alert_record(), "pinnprov", RunInfo())
    body = encode_bulk([action, action])
    assert body.endswith(b"\n") and body.count(b"\n") == 4
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[0] == {"index": {"_index": "pinnprov-alerts", "_id": "a" * 32}}
    assert lines[1] == dict(action.body) == lines[3]
    assert b", " not in body and b": " not in body  # compact separators


@pytest.mark.parametrize("position", range(5))
def test_every_document_field_is_mapped_with_a_compatible_type(position: int) -> None:
    templates = index_templates()
    record = all_records()[position]
    action = to_action(record, "pinnprov", run_info_from_start(start_record()))
    kind = action.index.removeprefix("pinnprov-")
    mappings = templates[kind]["template"]["mappings"]
    mapped = _mapped_paths(mappings)
    dynamic = [spec for entry in mappings.get("dynamic_templates", []) for spec in entry.values()]
    dynamic_prefixes = tuple(spec["path_match"].removesuffix("*") for spec in dynamic)
    flattened = tuple(f"{path}." for path, kind_ in mapped.items() if kind_ == "flattened")
    for doc in indexed_documents([action]):
        for path in document_fields(doc):
            if path.startswith(dynamic_prefixes) or path.startswith(flattened):
                continue
            assert path in mapped, f"{kind}: field {path!r} is not in the template mapping"
            value = _lookup(doc, path)
            if mapped[path] in ("long", "double"):
                assert isinstance(value, int | float) and not isinstance(value, bool), path
            if mapped[path] == "date":
                assert isinstance(value, str) and value.endswith("Z"), path


def _lookup(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc[part]
    return doc


def test_templates_use_explicit_mappings_for_ids_losses_and_dates() -> None:
    epochs = index_templates("custom")["epochs"]
    assert epochs["index_patterns"] == ["custom-epochs"]
    props = epochs["template"]["mappings"]["properties"]
    assert epochs["template"]["mappings"]["dynamic"] is False
    assert props["run_id"]["type"] == props["run_name"]["type"] == "keyword"
    assert {props[name]["type"] for name in ("loss", "loss_bc", "loss_residual", "loss_data")} == {"double"}
    assert props["@timestamp"]["type"] == "date" and props["epoch"]["type"] == "long"


def test_bad_prefix_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="'Bad Prefix'"):
        index_templates("Bad Prefix")
